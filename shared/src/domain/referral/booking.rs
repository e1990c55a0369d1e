//! Booking what the rules made due (ledger entries, counters, balances in the plan), and
//! releasing held rewards whose holds no longer apply: in the operation's own transaction when
//! they fit, else in bounded, idempotent chunks after it.

use time::OffsetDateTime;

use crate::backoff::Backoff;
use crate::domain::ledger::{Hold, Reward, RewardStatus};
use crate::domain::program::{BudgetPeriod, Program, Recipient};
use crate::domain::rules::{self, Due};
use crate::error::Result;
use crate::store::{
    Committed, Counter, MAX_ACTIONS, Plan, ReferralStore, Release, ReleaseJob, Spent,
};

use super::Referral;

/// Releases written in one transaction of a release job (each with its balance change, and the
/// job's deletion in the last chunk).
pub const RELEASE_CHUNK: usize = 80;

/// Turns due rewards into ledger entries: records them on the relation, counts them on its code
/// and in their recipients' balances. `seen` is the referrer's qualified count the decision was
/// made on: a reward held for `min_referrals` is written only if that count still holds, so a
/// concurrent sign-up that reaches the minimum cannot leave it held for ever.
///
/// A reward in the program's currency counts against the program's `budget` and (a referrer's)
/// their `max_earnings_per_promoter`, as read in `spent` plus what the plan counted before it;
/// one that would pass either is held (`budget_exhausted`, `earnings_cap_reached`) and counts in
/// neither. The counters' writes are conditioned on the limits, so concurrent bookings never
/// pass them. An admin's completion counts without a limit: it pays.
pub(crate) fn book(
    dues: Vec<Due>,
    program: &Program,
    relation: &mut Referral,
    seen: u64,
    spent: Spent,
    plan: &mut Plan,
    now: OffsetDateTime,
) {
    for mut due in dues {
        let (budget_bucket, counts_to_cap) =
            count_spend(&mut due, program, &relation.tenant, spent, plan, now);
        let reward = Reward {
            id: crate::domain::ledger::reward_id(&relation.id, &due.source),
            tenant: relation.tenant.clone(),
            user_id: due.user_id.clone(),
            recipient: due.recipient,
            program_id: relation.program_id.clone(),
            program_name: Some(program.name.clone()),
            referral_id: Some(relation.id.clone()),
            referrer_user_id: Some(relation.referrer_user_id.clone()),
            code: relation.code.clone(),
            kind: due.kind,
            amount: due.amount,
            currency: due.currency.clone(),
            delivery: due.delivery,
            status: due.status(),
            holds: due.holds.clone(),
            due_at: due
                .holds
                .contains(&Hold::HoldingPeriod)
                .then(|| now + time::Duration::days(i64::from(program.hold_days))),
            denial: None,
            invoice: due.invoice.clone(),
            reduced: 0,
            taken_back: 0,
            reverses: None,
            refund_reason: None,
            budget_bucket,
            counts_to_cap,
            reason: due.reason.to_owned(),
            last_error: None,
            attempts: 0,
            created: now,
            updated: now,
        };
        if due.once && !relation.fired_rules.contains(&due.rule_key) {
            relation.fired_rules.push(due.rule_key.clone());
        }
        if !due.once {
            *relation
                .invoice_counts
                .entry(due.rule_key.clone())
                .or_default() += 1;
        }
        if due.holds.contains(&Hold::MinReferrals) {
            plan.stats(
                &relation.tenant,
                &relation.referrer_user_id,
                &relation.program_id,
                seen,
                false,
            );
        }
        let code = relation.code.clone().unwrap_or_default();
        let counts = plan.code(&code, &relation.tenant);
        let earned = match due.recipient {
            Recipient::Referrer => &mut counts.referrer_earned,
            Recipient::Referee => &mut counts.referee_earned,
        };
        *earned.entry(reward.currency.clone()).or_default() += reward.amount;
        if due.recipient == Recipient::Referrer {
            if reward.kind == crate::domain::program::RewardKind::Cash {
                relation.referrer_earned = relation.referrer_earned.saturating_add(reward.amount);
            }
            relation.commission_status = Some(reward.status);
            relation.commission_reward_id = Some(reward.id.clone());
        }
        plan.earn(&reward);
        crate::domain::stats::earn(plan, &reward, reward.payable(), now);
        plan.rewards.push(reward);
    }
}

/// The budget period of a program at `now`: `total`, or the month (`2026-11`, UTC).
pub(crate) fn budget_bucket(program: &Program, now: OffsetDateTime) -> String {
    match program.budget_period {
        BudgetPeriod::Total => "total".to_owned(),
        BudgetPeriod::Month => format!("{:04}-{:02}", now.year(), u8::from(now.month())),
    }
}

pub(crate) fn budget_counter(tenant: &str, program_id: &str, bucket: &str) -> Counter {
    Counter::Budget {
        tenant: tenant.to_owned(),
        program_id: program_id.to_owned(),
        bucket: bucket.to_owned(),
    }
}

pub(crate) fn earnings_counter(tenant: &str, referrer: &str, program_id: &str) -> Counter {
    Counter::Earnings {
        tenant: tenant.to_owned(),
        user: referrer.to_owned(),
        program_id: program_id.to_owned(),
    }
}

/// The counters a booking in `program` for `referrer`'s relation decides on: no read for a
/// program without limits, else one `GetItem` per limit, in parallel.
pub(crate) async fn spent(
    store: &impl ReferralStore,
    program: &Program,
    referrer: &str,
    now: OffsetDateTime,
) -> Result<Spent> {
    let mut counters = Vec::new();
    if program.budget.is_some() {
        let bucket = budget_bucket(program, now);
        counters.push(budget_counter(&program.tenant, &program.id, &bucket));
    }
    if program.max_earnings_per_promoter.is_some() {
        counters.push(earnings_counter(&program.tenant, referrer, &program.id));
    }
    if counters.is_empty() {
        return Ok(Spent::default());
    }
    let values = store.counters(&counters).await?;
    let mut values = values.into_iter();
    Ok(Spent {
        budget: if program.budget.is_some() {
            values.next().unwrap_or(0)
        } else {
            0
        },
        earnings: values.next().unwrap_or(0),
    })
}

/// Counts `due` against the program's limits, or holds it for them (see [`book`]). Answers the
/// budget period it counts in and whether it counts to the referrer's cap.
fn count_spend(
    due: &mut Due,
    program: &Program,
    tenant: &str,
    spent: Spent,
    plan: &mut Plan,
    now: OffsetDateTime,
) -> (Option<String>, bool) {
    if due.currency != program.currency {
        return (None, false);
    }
    let by_admin = due.reason == "completed_by_admin";
    let bucket = budget_bucket(program, now);
    let budget = program
        .budget
        .map(|limit| (budget_counter(tenant, &program.id, &bucket), limit));
    let cap = program
        .max_earnings_per_promoter
        .filter(|_| due.recipient == Recipient::Referrer)
        .map(|limit| (earnings_counter(tenant, &due.user_id, &program.id), limit));
    let over = |limit: &Option<(Counter, i64)>, read: i64| {
        limit
            .as_ref()
            .is_some_and(|(counter, limit)| read + plan.spent_on(counter) + due.amount > *limit)
    };
    let (over_budget, over_cap) = (over(&budget, spent.budget), over(&cap, spent.earnings));
    if !by_admin && (over_budget || over_cap) {
        if over_budget {
            due.holds.push(Hold::BudgetExhausted);
        }
        if over_cap {
            due.holds.push(Hold::EarningsCapReached);
        }
        return (None, false);
    }
    let mut counted = (None, false);
    if let Some((counter, limit)) = budget {
        plan.spend(counter, due.amount, (!by_admin).then_some(limit));
        counted.0 = Some(bucket);
    }
    if let Some((counter, limit)) = cap {
        plan.spend(counter, due.amount, (!by_admin).then_some(limit));
        counted.1 = true;
    }
    counted
}

/// What holds every new reward of `referrer` (their promoter item, if they have one) in
/// `program` now: `promoter_suspended`, and `duplicate_payout_address` when the program checks
/// it and another promoter of the tenant pays out to the same address (one `GetItem` then).
pub(crate) async fn referrer_holds(
    store: &impl ReferralStore,
    program: &Program,
    referrer: Option<&crate::domain::promoter::Promoter>,
) -> Result<Vec<Hold>> {
    let Some(promoter) = referrer else {
        return Ok(Vec::new());
    };
    let mut holds = Vec::new();
    if promoter.is_suspended() {
        holds.push(Hold::PromoterSuspended);
    }
    if program.fraud.duplicate_payout_address
        && let Some(method) = &promoter.payout_method
    {
        let users = store.payout_address_users(&promoter.tenant, method).await?;
        if users.iter().any(|user| *user != promoter.user_id) {
            holds.push(Hold::DuplicatePayoutAddress);
        }
    }
    Ok(holds)
}

/// Counts a reward an admin releases from a budget or earnings-cap hold, under the program's
/// limits as read in `spent` (plus what the plan counted before it). Answers the budget period
/// and cap it counts in, or the hold it does not fit.
pub(crate) fn count_release(
    plan: &mut Plan,
    program: &Program,
    spent: Spent,
    reward: &Reward,
    now: OffsetDateTime,
) -> std::result::Result<(Option<String>, bool), Hold> {
    let mut due = Due {
        source: String::new(),
        rule_key: String::new(),
        once: true,
        recipient: reward.recipient,
        user_id: reward.user_id.clone(),
        kind: reward.kind,
        amount: reward.payable(),
        currency: reward.currency.clone(),
        delivery: reward.delivery,
        holds: Vec::new(),
        reason: "released_by_admin",
        invoice: None,
    };
    let counted = count_spend(&mut due, program, &reward.tenant, spent, plan, now);
    match due.holds.first() {
        Some(hold) => Err(*hold),
        None => Ok(counted),
    }
}

/// Gives `amount` of `reward` back to the program limits it was counted in (a reversal, a
/// refund).
pub(crate) fn give_back(plan: &mut Plan, reward: &Reward, amount: i64) {
    if amount == 0 {
        return;
    }
    if let Some(bucket) = &reward.budget_bucket {
        plan.spend(
            budget_counter(&reward.tenant, &reward.program_id, bucket),
            -amount,
            None,
        );
    }
    if reward.counts_to_cap {
        plan.spend(
            earnings_counter(&reward.tenant, &reward.user_id, &reward.program_id),
            -amount,
            None,
        );
    }
}

/// What a release lifts: the identity check of `verified_relation`'s rewards, and the referrer's
/// `min_referrals` when `min_referrals_met`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lift<'a> {
    pub verified_relation: Option<&'a str>,
    pub min_referrals_met: bool,
    /// Holding periods that ended by then.
    pub due_by: Option<OffsetDateTime>,
}

impl Lift<'_> {
    fn holds(&self, reward: &Reward) -> Vec<Hold> {
        let mut lifted = Vec::new();
        if self.verified_relation.is_some()
            && reward.referral_id.as_deref() == self.verified_relation
        {
            lifted.push(Hold::Verification);
        }
        if self.min_referrals_met && reward.recipient == Recipient::Referrer {
            lifted.push(Hold::MinReferrals);
        }
        if let (Some(by), Some(due)) = (self.due_by, reward.due_at)
            && due <= by
        {
            lifted.push(Hold::HoldingPeriod);
        }
        lifted
    }
}

/// The releases of `candidates` that `lift` frees of at least one hold: a reward whose holds
/// are all lifted becomes pending or credited. Repeats are released once.
pub(crate) fn releases(candidates: Vec<Reward>, lift: Lift, now: OffsetDateTime) -> Vec<Release> {
    let mut releases: Vec<Release> = Vec::new();
    for before in candidates {
        let lifted = lift.holds(&before);
        if before.status != RewardStatus::Held
            || !before.holds.iter().any(|hold| lifted.contains(hold))
            || releases.iter().any(|r| r.reward.id == before.id)
        {
            continue;
        }
        let mut after = before.clone();
        after.holds.retain(|hold| !lifted.contains(hold));
        after.status = rules::status_for(&after.holds, after.delivery);
        after.updated = now;
        releases.push(Release {
            holds_before: before.holds.len(),
            reward: after,
        });
    }
    releases
}

/// Adds `releases` to the plan with their balance changes if the transaction can hold them all;
/// else records `jobs` in it instead, to be run after it commits ([`run_release_job`]), and
/// answers them.
pub(crate) fn fit_releases(
    plan: &mut Plan,
    releases: Vec<Release>,
    candidates: &[Reward],
    jobs: Vec<ReleaseJob>,
) -> Vec<ReleaseJob> {
    if releases.is_empty() {
        return Vec::new();
    }
    let mut with = plan.clone();
    add_releases(&mut with, releases, candidates);
    if with.actions() <= MAX_ACTIONS {
        *plan = with;
        return Vec::new();
    }
    plan.release_jobs.extend(jobs.iter().cloned());
    jobs
}

fn add_releases(plan: &mut Plan, releases: Vec<Release>, candidates: &[Reward]) {
    for release in releases {
        if let Some(before) = candidates.iter().find(|r| r.id == release.reward.id) {
            plan.change(before, &release.reward);
        }
        plan.releases.push(release);
    }
}

/// A release job for `user`'s rewards in `program_id`.
pub(crate) fn job(
    tenant: &str,
    user: &str,
    program_id: &str,
    lift: Lift,
    now: OffsetDateTime,
) -> ReleaseJob {
    ReleaseJob {
        tenant: tenant.to_owned(),
        user_id: user.to_owned(),
        program_id: program_id.to_owned(),
        relation_id: lift.verified_relation.map(str::to_owned),
        min_referrals_met: lift.min_referrals_met,
        created: now,
    }
}

/// Whether two jobs are the same item (one per user, program and relation).
pub(crate) fn same_job(a: &ReleaseJob, b: &ReleaseJob) -> bool {
    (&a.tenant, &a.user_id, &a.program_id, &a.relation_id)
        == (&b.tenant, &b.user_id, &b.program_id, &b.relation_id)
}

/// Runs a release job: the user's held rewards it frees, in transactions of at most
/// [`RELEASE_CHUNK`] releases, each conditioned on the rewards being held still (so a chunk
/// run twice, or beside another run, releases nothing twice); the last one deletes the job.
/// Answers what this run released.
pub async fn run_release_job(store: &impl ReferralStore, job: &ReleaseJob) -> Result<Vec<Reward>> {
    let lift = Lift {
        verified_relation: job.relation_id.as_deref(),
        min_referrals_met: job.min_referrals_met,
        due_by: None,
    };
    let relation = if job.min_referrals_met {
        None
    } else {
        job.relation_id.as_deref()
    };
    let mut released = Vec::new();
    let mut backoff = Backoff::new();
    loop {
        let held = store
            .held_rewards(&job.tenant, &job.user_id, &job.program_id, relation)
            .await?;
        let mut pending = releases(held.clone(), lift, crate::clock::now());
        let last = pending.len() <= RELEASE_CHUNK;
        pending.truncate(RELEASE_CHUNK);
        let mut plan = Plan::default();
        add_releases(&mut plan, pending, &held);
        if last {
            plan.finished_jobs.push(job.clone());
        }
        match store.apply(&plan).await? {
            Committed::Done => {
                released.extend(plan.released());
                if last {
                    return Ok(released);
                }
            }
            _ => backoff.wait().await?,
        }
    }
}

/// Rewards whose holding period ended are released per transaction in chunks of this many.
pub const DUE_CHUNK: usize = 40;

/// Releases the holding period of rewards due by `now` (the scheduled reconciler's pass): at
/// most `limit`, read through the sparse index of held rewards by due time (never a scan), in
/// transactions of [`DUE_CHUNK`], each conditioned on every reward being held still as read.
/// A chunk whose condition fails is retried reward by reward; a reward that changed since the
/// index was read (it is eventually consistent) is left to the next pass. Idempotent: a
/// released reward leaves the index. Answers what was released (a reward still held for
/// another reason counts too: only its holding period ended).
pub async fn release_due(
    store: &impl ReferralStore,
    now: OffsetDateTime,
    limit: usize,
) -> Result<Vec<Reward>> {
    let due = store.due_rewards(now, limit).await?;
    let lift = Lift {
        verified_relation: None,
        min_referrals_met: false,
        due_by: Some(now),
    };
    let mut released = Vec::new();
    for chunk in releases(due.clone(), lift, now).chunks(DUE_CHUNK) {
        let mut plan = Plan::default();
        add_releases(&mut plan, chunk.to_vec(), &due);
        if store.apply(&plan).await? == Committed::Done {
            released.extend(plan.released());
            continue;
        }
        for release in chunk {
            let mut plan = Plan::default();
            add_releases(&mut plan, vec![release.clone()], &due);
            if store.apply(&plan).await? == Committed::Done {
                released.extend(plan.released());
            }
        }
    }
    Ok(released)
}

/// Runs the jobs a committed plan left (its releases did not fit), best effort: what fails is
/// logged and left to the reconciler, which resumes unfinished jobs. Answers what was released.
pub(crate) async fn finish_release_jobs(
    store: &impl ReferralStore,
    jobs: &[ReleaseJob],
) -> Vec<Reward> {
    let mut released = Vec::new();
    for job in jobs {
        match run_release_job(store, job).await {
            Ok(rewards) => released.extend(rewards),
            Err(error) => tracing::warn!(
                %error,
                user = %job.user_id,
                program = %job.program_id,
                "release job not finished; the reconciler resumes it"
            ),
        }
    }
    released
}
