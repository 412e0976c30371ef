//! Times in documents and queries (SPEC §17.3): a query operand given as
//! a [`Timestamp`] is a time, written `{"$time": <raw timestamp>}` in a
//! query's JSON. It matches a field holding a raw timestamp (a number, as
//! `Timestamp` serializes) or an ISO-8601 string, compared as instants; a
//! field of any other kind, or a string that is not an ISO-8601 time,
//! never matches it.

use std::cmp::Ordering;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use strata_engine::Timestamp;

/// The key of a time operand's JSON object.
pub(crate) const TIME_KEY: &str = "$time";

/// The JSON of a time operand.
pub(crate) fn operand(t: Timestamp) -> Value {
    let mut m = Map::new();
    m.insert(TIME_KEY.into(), Value::from(t.as_u64()));
    Value::Object(m)
}

/// `v` as a time operand, when it is one.
pub(crate) fn as_time(v: &Value) -> Option<Timestamp> {
    match v {
        Value::Object(m) if m.len() == 1 => m.get(TIME_KEY)?.as_u64().map(Timestamp),
        _ => None,
    }
}

/// The time operand a query builder was given, when the value is a
/// [`Timestamp`] (or a reference to one): its type, not its JSON (a
/// number), says it is a time.
pub(crate) fn from_operand<T: Serialize + ?Sized>(v: &T) -> Option<Timestamp> {
    let name = std::any::type_name::<T>().trim_start_matches('&');
    if name != std::any::type_name::<Timestamp>() {
        return None;
    }
    match serde_json::to_value(v).ok()? {
        Value::Number(n) => n.as_u64().map(Timestamp),
        _ => None,
    }
}

/// The instant a document field holds: a raw timestamp number or an
/// ISO-8601 string.
pub(crate) fn field_time(v: &Value) -> Option<Timestamp> {
    match v {
        Value::Number(n) => n.as_u64().map(Timestamp),
        Value::String(s) => Timestamp::from_iso8601(s).ok(),
        _ => None,
    }
}

/// How field value `v` compares with time `t`; `None` when `v` is no time.
pub(crate) fn compare(v: &Value, t: Timestamp) -> Option<Ordering> {
    field_time(v).map(|f| f.cmp(&t))
}

/// The date (`YYYY-MM-DD`) of `t` moved by `days`: every ISO-8601 string of
/// an instant starts with its local date, within a day of its UTC date,
/// so these bound where such strings sort in an index.
pub(crate) fn date_bound(t: Timestamp, days: i64) -> String {
    let d = Duration::from_secs(86_400 * days.unsigned_abs());
    let moved = if days < 0 {
        t.saturating_sub(d)
    } else {
        t.saturating_add(d)
    };
    moved.to_iso8601().chars().take(10).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_told_apart_from_numbers_by_type() {
        let t = Timestamp(42 << 12);
        assert_eq!(from_operand(&t), Some(t));
        assert_eq!(from_operand(&&t), Some(t));
        assert_eq!(from_operand(&(42u64 << 12)), None);
        assert_eq!(as_time(&operand(t)), Some(t));
        assert_eq!(as_time(&Value::from(7)), None);
    }

    #[test]
    fn fields_compare_as_instants_whatever_their_form() {
        let t = Timestamp::from_iso8601("2023-01-01T00:00:00Z").unwrap();
        let same = [
            Value::from("2023-01-01T00:00:00Z"),
            Value::from("2023-01-01T00:00:00.000000Z"),
            Value::from("2023-01-01T02:00:00+02:00"),
            Value::from(t.as_u64()),
        ];
        for v in &same {
            assert_eq!(compare(v, t), Some(Ordering::Equal), "{v}");
        }
        assert_eq!(
            compare(&Value::from("2024-05-01T00:00:00Z"), t),
            Some(Ordering::Greater)
        );
        assert_eq!(compare(&Value::from("not a time"), t), None);
        assert_eq!(compare(&Value::Bool(true), t), None);
        assert_eq!(date_bound(t, -1), "2022-12-31");
        assert_eq!(date_bound(t, 2), "2023-01-03");
    }
}
