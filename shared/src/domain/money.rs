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

#[cfg(test)]
mod tests {
    use super::*;

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
