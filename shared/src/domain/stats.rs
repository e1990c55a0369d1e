//! Figures over time: day buckets per promoter (as referrer) and per program, kept by the
//! transactions that change what they count (a sign-up counts its sign-up, a reward what it
//! earned); clicks, best effort, by the outbox dispatcher from the table's stream (the click
//! itself is one `UpdateItem` of its code). A range of days is one `Query`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::error::{Error, Result};
use crate::store::{Day, Plan};

/// The most days one answer covers.
pub const MAX_DAYS: i64 = 366;
/// Days answered when the query names none.
pub const DEFAULT_DAYS: i64 = 30;

/// The UTC date of `at`, as day keys spell it (`2026-11-24`).
pub fn date_of(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC).date().to_string()
}

pub fn promoter_day(tenant: &str, user: &str, at: OffsetDateTime) -> Day {
    Day::Promoter {
        tenant: tenant.to_owned(),
        user: user.to_owned(),
        date: date_of(at),
    }
}

pub fn program_day(tenant: &str, program_id: &str, at: OffsetDateTime) -> Day {
    Day::Program {
        tenant: tenant.to_owned(),
        program_id: program_id.to_owned(),
        date: date_of(at),
    }
}

/// A referrer's entries in a program's leaderboards at `at`: all time and the month.
pub fn board_days(tenant: &str, program_id: &str, referrer: &str, at: OffsetDateTime) -> [Day; 2] {
    let entry = |period: String| Day::Board {
        tenant: tenant.to_owned(),
        program_id: program_id.to_owned(),
        period,
        referrer: referrer.to_owned(),
    };
    [entry(ALL_TIME.to_owned()), entry(month_of(at))]
}

/// The all-time leaderboard's period.
pub const ALL_TIME: &str = "all";

/// The month of `at` (UTC) as leaderboard periods spell it: `2026-11`.
pub fn month_of(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}", at.year(), u8::from(at.month()))
}

/// What a change of a relation of `referrer` in `program_id` counts, on today's days of both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    Signup,
    Verified,
    Converted,
}

pub fn count(
    plan: &mut Plan,
    tenant: &str,
    referrer: &str,
    program_id: &str,
    what: Counted,
    now: OffsetDateTime,
) {
    let mut days = vec![
        promoter_day(tenant, referrer, now),
        program_day(tenant, program_id, now),
    ];
    if what == Counted::Signup {
        days.extend(board_days(tenant, program_id, referrer, now));
    }
    for day in days {
        let figures = plan.day(day);
        match what {
            Counted::Signup => figures.signups += 1,
            Counted::Verified => figures.verified += 1,
            Counted::Converted => figures.converted += 1,
        }
    }
}

/// Counts `amount` earned (negative: taken back) by a reward of `program_id` on today's days:
/// the program's, and its referrer's when the referrer is the recipient.
pub fn earn(
    plan: &mut Plan,
    reward: &crate::domain::ledger::Reward,
    amount: i64,
    now: OffsetDateTime,
) {
    if amount == 0 {
        return;
    }
    let mut days = vec![program_day(&reward.tenant, &reward.program_id, now)];
    if reward.recipient == crate::domain::program::Recipient::Referrer {
        days.push(promoter_day(&reward.tenant, &reward.user_id, now));
        // Leaderboards rank cash earned (a program pays it in its one currency).
        if reward.kind == crate::domain::program::RewardKind::Cash {
            days.extend(board_days(
                &reward.tenant,
                &reward.program_id,
                &reward.user_id,
                now,
            ));
        }
    }
    for day in days {
        *plan
            .day(day)
            .earned
            .entry(reward.currency.clone())
            .or_default() += amount;
    }
}

/// One day's figures as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayFigures {
    pub date: String,
    pub clicks: i64,
    pub signups: i64,
    pub verified: i64,
    /// Relations whose first invoice was paid that day.
    pub converted: i64,
    /// Rewards earned that day per currency (less what refunds and denials took back that day).
    pub earned: BTreeMap<String, i64>,
}

/// The figures of a whole range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub clicks: i64,
    pub signups: i64,
    pub verified: i64,
    pub converted: i64,
    pub earned: BTreeMap<String, i64>,
}

/// `GET …/stats`: a series per day (every day of the range, zero-filled), the totals and the
/// conversion rates.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub from: String,
    pub to: String,
    pub days: Vec<DayFigures>,
    pub totals: Totals,
    /// Sign-ups per click, `null` without clicks.
    pub signup_rate: Option<f64>,
    /// Converted (paid) per sign-up, `null` without sign-ups.
    pub paid_rate: Option<f64>,
}

/// The query of a stats route: `from` and `to`, UTC dates, inclusive.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Range {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

impl Range {
    /// The dates asked for: by default the 30 days ending today; at most 366.
    pub fn dates(&self, today: Date) -> Result<(Date, Date)> {
        let parse = |field: &str, text: &Option<String>| -> Result<Option<Date>> {
            text.as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| {
                    Date::parse(t, &time::format_description::well_known::Iso8601::DATE)
                        .map_err(|_| Error::invalid(field, "must be a date such as 2026-11-24"))
                })
                .transpose()
        };
        let to = parse("to", &self.to)?.unwrap_or(today);
        let from =
            parse("from", &self.from)?.unwrap_or(to - time::Duration::days(DEFAULT_DAYS - 1));
        if from > to {
            return Err(Error::invalid("from", "must not be after to"));
        }
        if (to - from).whole_days() + 1 > MAX_DAYS {
            return Err(Error::invalid(
                "from",
                format!("the range covers at most {MAX_DAYS} days"),
            ));
        }
        Ok((from, to))
    }
}

/// The series of `from..=to` from the days found (absent days are zeros).
pub fn stats(from: Date, to: Date, found: Vec<DayFigures>) -> Stats {
    let mut by_date: BTreeMap<String, DayFigures> =
        found.into_iter().map(|d| (d.date.clone(), d)).collect();
    let mut days = Vec::new();
    let mut totals = Totals::default();
    let mut date = from;
    loop {
        let key = date.to_string();
        let day = by_date.remove(&key).unwrap_or(DayFigures {
            date: key,
            ..DayFigures::default()
        });
        totals.clicks += day.clicks;
        totals.signups += day.signups;
        totals.verified += day.verified;
        totals.converted += day.converted;
        for (currency, amount) in &day.earned {
            *totals.earned.entry(currency.clone()).or_default() += amount;
        }
        days.push(day);
        match date.next_day() {
            Some(next) if next <= to => date = next,
            _ => break,
        }
    }
    let rate = |part: i64, whole: i64| {
        (whole > 0).then(|| ((part as f64 / whole as f64) * 10_000.0).round() / 10_000.0)
    };
    Stats {
        from: from.to_string(),
        to: to.to_string(),
        signup_rate: rate(totals.signups, totals.clicks),
        paid_rate: rate(totals.converted, totals.signups),
        days,
        totals,
    }
}

/// One referrer in a leaderboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Leader {
    pub user_id: String,
    pub signups: i64,
    /// Cash earned in the program (its currency, minor units), less what was taken back.
    pub earned: i64,
}

/// The most referrers a leaderboard lists.
pub const LEADERS: usize = 100;

/// The query of `GET /v1/programs/{id}/leaderboard`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct BoardQuery {
    /// `earned` (the default) or `signups`.
    #[serde(default)]
    pub metric: Option<String>,
    /// `all`, `month` (the default: this month) or a month `2026-11`.
    #[serde(default)]
    pub period: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Leaderboard {
    pub program_id: String,
    pub currency: String,
    pub metric: &'static str,
    pub period: String,
    pub leaders: Vec<Ranked>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ranked {
    pub rank: usize,
    #[serde(flatten)]
    pub leader: Leader,
}

/// A program's top referrers of a period, by cash earned or by sign-ups: the program's
/// `GetItem` and one `Query` of at most 100 items (a numeric index per metric), in parallel.
pub async fn leaderboard(
    store: &(impl crate::store::ReferralStore + crate::store::ProgramStore),
    tenant: &str,
    id: &str,
    query: &BoardQuery,
) -> Result<Leaderboard> {
    let by_earnings = match query.metric.as_deref().unwrap_or("earned") {
        "earned" => true,
        "signups" => false,
        _ => return Err(Error::invalid("metric", "must be earned or signups")),
    };
    let period = match query.period.as_deref().unwrap_or("month") {
        "month" => month_of(crate::clock::now()),
        ALL_TIME => ALL_TIME.to_owned(),
        month
            if month.len() == 7
                && Date::parse(
                    &format!("{month}-01"),
                    &time::format_description::well_known::Iso8601::DATE,
                )
                .is_ok() =>
        {
            month.to_owned()
        }
        _ => {
            return Err(Error::invalid(
                "period",
                "must be all, month or a month such as 2026-11",
            ));
        }
    };
    let (program, leaders) = tokio::join!(
        crate::domain::program::get_program(store, tenant, id),
        store.leaders(tenant, id, &period, by_earnings, LEADERS),
    );
    let program = program?;
    Ok(Leaderboard {
        program_id: program.id,
        currency: program.currency,
        metric: if by_earnings { "earned" } else { "signups" },
        period,
        leaders: leaders?
            .into_iter()
            .enumerate()
            .map(|(i, leader)| Ranked {
                rank: i + 1,
                leader,
            })
            .collect(),
    })
}

/// A promoter's figures as referrer over `range`: one `Query` of their day items.
pub async fn promoter_stats(
    store: &impl crate::store::ReferralStore,
    tenant: &str,
    user: &str,
    range: &Range,
) -> Result<Stats> {
    let (from, to) = range.dates(crate::clock::now().date())?;
    let of = crate::store::DaysOf::Promoter {
        tenant: tenant.to_owned(),
        user: user.to_owned(),
    };
    let found = store.days(&of, &from.to_string(), &to.to_string()).await?;
    Ok(stats(from, to, found))
}

/// A program's figures over `range` (clicks: on its extra codes; primary codes belong to no
/// program): its `GetItem` and one `Query` of its day items, in parallel.
pub async fn program_stats(
    store: &(impl crate::store::ReferralStore + crate::store::ProgramStore),
    tenant: &str,
    id: &str,
    range: &Range,
) -> Result<Stats> {
    let (from, to) = range.dates(crate::clock::now().date())?;
    let of = crate::store::DaysOf::Program {
        tenant: tenant.to_owned(),
        program_id: id.to_owned(),
    };
    let (first, last) = (from.to_string(), to.to_string());
    let (program, found) = tokio::join!(
        crate::domain::program::get_program(store, tenant, id),
        store.days(&of, &first, &last),
    );
    program?;
    Ok(stats(from, to, found?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn ranges_default_to_thirty_days_and_are_bounded() {
        let today = date!(2026 - 11 - 24);
        assert_eq!(
            Range::default().dates(today).unwrap(),
            (date!(2026 - 10 - 26), today)
        );
        let range = |from: &str, to: &str| Range {
            from: Some(from.into()),
            to: Some(to.into()),
        };
        assert!(range("2026-01-01", "2026-12-31").dates(today).is_ok());
        assert_eq!(
            range("2025-01-01", "2026-12-31")
                .dates(today)
                .unwrap_err()
                .to_string(),
            "from: the range covers at most 366 days"
        );
        assert!(range("2026-11-25", "2026-11-24").dates(today).is_err());
        assert!(range("yesterday", "2026-11-24").dates(today).is_err());
    }

    #[test]
    fn a_series_is_zero_filled_with_totals_and_rates() {
        let found = vec![DayFigures {
            date: "2026-11-23".into(),
            clicks: 8,
            signups: 2,
            converted: 1,
            earned: BTreeMap::from([("USD".into(), 1500)]),
            ..DayFigures::default()
        }];
        let answer = stats(date!(2026 - 11 - 22), date!(2026 - 11 - 24), found);
        assert_eq!(answer.days.len(), 3);
        assert_eq!(answer.days[0].clicks, 0);
        assert_eq!(answer.totals.earned["USD"], 1500);
        assert_eq!(
            (answer.signup_rate, answer.paid_rate),
            (Some(0.25), Some(0.5))
        );
        let empty = stats(date!(2026 - 11 - 24), date!(2026 - 11 - 24), Vec::new());
        assert_eq!((empty.signup_rate, empty.paid_rate), (None, None));
    }
}
