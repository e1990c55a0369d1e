//! Time: RFC 3339 UTC timestamps with millisecond precision, so stored strings sort like times.

use time::OffsetDateTime;

/// How far this process's clock is moved (milliseconds; `dev-clock` only).
#[cfg(feature = "dev-clock")]
static OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Moves this process's clock by `offset` (back, when negative): `make demo` writes a month of
/// activity through the routes, one day at a time. Only the local stack enables the `dev-clock`
/// feature; no function is built with it.
#[cfg(feature = "dev-clock")]
pub fn set_offset(offset: time::Duration) {
    OFFSET_MS.store(
        offset.whole_milliseconds() as i64,
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Now, in UTC, truncated to whole milliseconds.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    #[cfg(feature = "dev-clock")]
    let now =
        now + time::Duration::milliseconds(OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed));
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .expect("a truncated nanosecond is in range")
}

/// RFC 3339 in UTC with exactly three fractional digits, so that stored strings sort like the
/// times they stand for.
const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
);

/// The stored and answered form of a timestamp, e.g. `2026-11-23T08:34:48.730Z`.
pub fn format(value: OffsetDateTime) -> String {
    value
        .to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .expect("every timestamp of years 0-9999 formats")
}

/// Serde for RFC 3339 timestamps, always written in UTC.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub fn serialize<S: Serializer>(
        value: &OffsetDateTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    /// An RFC 3339 timestamp, in UTC. Its UTC form must fall in the years 0000-9999 (an offset
    /// can push `9999-12-31T23:59:59-01:00` past them).
    pub fn parse(text: &str) -> Result<OffsetDateTime, String> {
        let value = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
            format!("'{text}' is not an RFC 3339 timestamp such as 2027-01-31T23:59:59Z")
        })?;
        value
            .checked_to_offset(time::UtcOffset::UTC)
            .filter(|utc| (0..=9999).contains(&utc.year()))
            .ok_or_else(|| format!("'{text}' is outside the years 0000-9999 in UTC"))
    }

    /// `Option<OffsetDateTime>`: `null` when absent.
    pub mod option {
        use super::*;
        use serde::Serialize;

        pub fn serialize<S: Serializer>(
            value: &Option<OffsetDateTime>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => super::serialize(value, serializer),
                None => Option::<()>::None.serialize(serializer),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            Option::<String>::deserialize(deserializer)?
                .map(|text| parse(&text).map_err(serde::de::Error::custom))
                .transpose()
        }
    }

    /// `Option<Option<OffsetDateTime>>` for partial updates: absent (outer `None`, with
    /// `#[serde(default)]`), `null` (`Some(None)`: clear it), or a value.
    pub mod patch {
        use super::*;

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
            super::option::deserialize(deserializer).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_timestamps_sort_like_times() {
        let earlier = time::macros::datetime!(2026-11-23 08:34:48.73 UTC);
        let later = time::macros::datetime!(2026-11-23 08:34:48.731 UTC);
        assert_eq!(format(earlier), "2026-11-23T08:34:48.730Z");
        assert!(format(earlier) < format(later));
        assert_eq!(
            format(time::macros::datetime!(2027-01-01 00:00 UTC)),
            "2027-01-01T00:00:00.000Z"
        );
        assert_eq!(rfc3339::parse(&format(later)).unwrap(), later);
    }

    #[test]
    fn now_has_millisecond_precision() {
        assert_eq!(now().nanosecond() % 1_000_000, 0);
    }

    #[test]
    fn parses_offsets_into_utc_and_rejects_other_formats() {
        let value = rfc3339::parse("2027-01-01T02:00:00+02:00").unwrap();
        assert_eq!(value, time::macros::datetime!(2027-01-01 00:00 UTC));
        assert!(rfc3339::parse("2027-01-01").is_err());
        assert!(rfc3339::parse("1700000000").is_err());
        assert!(
            rfc3339::parse("9999-12-31T23:59:59-01:00").is_err(),
            "year 10000 in UTC"
        );
        assert!(
            rfc3339::parse("0000-01-01T00:30:00+01:00").is_err(),
            "year -1 in UTC"
        );
        assert!(rfc3339::parse("9999-12-31T22:59:59-01:00").is_ok());
    }
}
