//! Money: integer minor units of an ISO 4217 currency, or points; bounds, currency codes, and
//! percentages rounded half to even.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::error::{Error, Result};

/// The largest amount (minor units or points) a rule, threshold or override may name:
/// one billion major units, far from `i64` overflow when summed.
pub const MAX_AMOUNT: i64 = 100_000_000_000;
/// The currency of point rewards.
pub const POINTS: &str = "POINTS";

/// A program's currency: an ISO 4217 code or `POINTS`.
pub fn validate_currency(currency: &str) -> Result<()> {
    let well_formed = currency == POINTS
        || (currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()));
    if !well_formed {
        return Err(Error::invalid(
            "currency",
            "must be 3 upper-case letters (ISO 4217, such as USD) or POINTS",
        ));
    }
    if currency != POINTS && iso_currency::Currency::from_code(currency).is_none() {
        return Err(Error::invalid(
            "currency",
            format!("{currency} is not an ISO 4217 currency code"),
        ));
    }
    Ok(())
}

/// A money currency of an invoice or payout (ISO 4217, not points), in canonical upper case.
pub fn money_currency(field: &str, text: &str) -> Result<String> {
    let currency = text.trim().to_ascii_uppercase();
    if currency.len() != 3 || iso_currency::Currency::from_code(&currency).is_none() {
        return Err(Error::invalid(
            field,
            "must be an ISO 4217 code such as USD",
        ));
    }
    Ok(currency)
}

/// `percent` % of `amount` minor units, rounded half-even to whole minor units.
pub fn percent_of(amount: i64, percent: f64) -> i64 {
    // The shortest decimal that reads back as this f64: 15.3 is 15.3, not 15.300000000000000710.
    let Ok(percent) = percent.to_string().parse::<Decimal>() else {
        return 0;
    };
    let exact = Decimal::from(amount) * percent / Decimal::ONE_HUNDRED;
    exact
        .round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven)
        .try_into()
        .unwrap_or(0)
}

/// `amount × part / whole`, rounded half-even to whole minor units (0 when `whole` is not
/// positive): the share of a reward a partial refund takes back.
pub fn prorate(amount: i64, part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        return 0;
    }
    let exact = Decimal::from(amount) * Decimal::from(part) / Decimal::from(whole);
    exact
        .round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven)
        .try_into()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_half_to_even() {
        assert_eq!(prorate(1500, 5000, 10_000), 750);
        assert_eq!(prorate(3, 1, 2), 2, "1.5 -> 2");
        assert_eq!(prorate(5, 1, 2), 2, "2.5 -> 2");
        assert_eq!(prorate(1000, 1, 3), 333);
        assert_eq!(prorate(1000, 2, 3), 667);
        assert_eq!(prorate(1000, 3, 3), 1000);
        assert_eq!(prorate(1000, 1, 0), 0);
    }

    #[test]
    fn percentages_round_half_to_even() {
        assert_eq!(percent_of(10_000, 15.0), 1500);
        assert_eq!(percent_of(10, 15.0), 2, "1.5 -> 2");
        assert_eq!(percent_of(30, 15.0), 4, "4.5 -> 4");
        assert_eq!(percent_of(50, 15.0), 8, "7.5 -> 8");
        assert_eq!(percent_of(1, 0.5), 0);
        assert_eq!(percent_of(999, 100.0), 999);
        assert_eq!(percent_of(1000, 15.3), 153, "no binary float artefacts");
        assert_eq!(percent_of(3, 50.0), 2, "1.5 -> 2");
        assert_eq!(percent_of(5, 50.0), 2, "2.5 -> 2");
    }
}
