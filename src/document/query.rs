//! Document queries: filters on (nested) fields, paging, sorting, and the
//! point in time a query reads at. Every type here is serde, so a query
//! can be stored or sent as JSON.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_engine::Timestamp;

use super::time;
use super::value::{self, compare_values, kind, lookup};
use crate::transaction::{StorageTransaction, TransactionId};

/// A comparison of one field against operands. Range comparisons match
/// only values of the operand's JSON kind (a number is never "greater"
/// than a string); see SPEC §17.3 for the order.
///
/// A field holding an array matches when the array itself or any of its
/// elements does (MongoDB's rule): `{"tags": ["a", "b"]}` equals `"a"`,
/// and `[1, 9]` is greater than 5. [`EqualsWhole`](FilterOp::EqualsWhole)
/// compares the whole value only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "value")]
pub enum FilterOp {
    /// The field is present and equal to the value.
    Equals(Value),
    /// The field is missing or not equal to the value.
    NotEquals(Value),
    /// The field is greater than the value (same kind).
    GreaterThan(Value),
    /// The field is greater than or equal to the value (same kind).
    GreaterOrEqual(Value),
    /// The field is less than the value (same kind).
    LessThan(Value),
    /// The field is less than or equal to the value (same kind).
    LessOrEqual(Value),
    /// The field equals one of the values.
    In(Vec<Value>),
    /// The field is present (`true`, `null` counts as present) or missing
    /// (`false`).
    Exists(bool),
    /// The field is a string starting with this prefix.
    Prefix(String),
    /// The field is present and its whole value equals this one: an array
    /// matches only an equal array, never through its elements.
    EqualsWhole(Value),
}

/// One filter: a field path (`a.b.c`; array elements by index, `a.0`)
/// and a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldFilter {
    /// The field path.
    pub field: String,
    /// The comparison.
    #[serde(flatten)]
    pub op: FilterOp,
}

impl FieldFilter {
    /// Whether `doc` passes this filter.
    pub fn matches(&self, doc: &Value) -> bool {
        let v = lookup(doc, &self.field);
        match &self.op {
            FilterOp::Exists(want) => v.is_some() == *want,
            FilterOp::EqualsWhole(x) => {
                v.is_some_and(|v| one_matches(&FilterOp::Equals(x.clone()), v))
            }
            // Not equal: no element, nor the whole value, is equal.
            FilterOp::NotEquals(x) => !v.is_some_and(|v| {
                candidates(v).any(|c| one_matches(&FilterOp::Equals(x.clone()), c))
            }),
            op => v.is_some_and(|v| candidates(v).any(|c| one_matches(op, c))),
        }
    }
}

/// What a filter on a field holding `v` compares against: `v`, and when
/// it is an array, each element.
pub(crate) fn candidates(v: &Value) -> impl Iterator<Item = &Value> {
    let elements = match v {
        Value::Array(a) => a.as_slice(),
        _ => &[],
    };
    std::iter::once(v).chain(elements)
}

/// Whether the single value `v` passes `op` (an operator other than
/// `Exists`, `NotEquals` and `EqualsWhole`, which [`FieldFilter::matches`]
/// reduces to this).
fn one_matches(op: &FilterOp, v: &Value) -> bool {
    if let Some(m) = matches_time(op, v) {
        return m;
    }
    let same_kind = |x: &Value| (kind(v) == kind(x)).then_some(v);
    match op {
        FilterOp::Equals(x) | FilterOp::EqualsWhole(x) => compare_values(v, x) == Ordering::Equal,
        FilterOp::GreaterThan(x) => {
            same_kind(x).is_some_and(|v| compare_values(v, x) == Ordering::Greater)
        }
        FilterOp::GreaterOrEqual(x) => {
            same_kind(x).is_some_and(|v| compare_values(v, x) != Ordering::Less)
        }
        FilterOp::LessThan(x) => {
            same_kind(x).is_some_and(|v| compare_values(v, x) == Ordering::Less)
        }
        FilterOp::LessOrEqual(x) => {
            same_kind(x).is_some_and(|v| compare_values(v, x) != Ordering::Greater)
        }
        FilterOp::In(xs) => xs.iter().any(|x| compare_values(v, x) == Ordering::Equal),
        FilterOp::Prefix(p) => matches!(v, Value::String(s) if s.starts_with(p.as_str())),
        FilterOp::NotEquals(_) | FilterOp::Exists(_) => false,
    }
}

/// Whether the single value `v` passes `op` when its operand is a time
/// (`None` when it is not one): compared as instants (SPEC §17.3).
fn matches_time(op: &FilterOp, v: &Value) -> Option<bool> {
    let at = |x: &Value| time::as_time(x);
    let cmp = |t| time::compare(v, t);
    Some(match op {
        FilterOp::Equals(x) | FilterOp::EqualsWhole(x) => cmp(at(x)?) == Some(Ordering::Equal),
        FilterOp::GreaterThan(x) => cmp(at(x)?) == Some(Ordering::Greater),
        FilterOp::GreaterOrEqual(x) => cmp(at(x)?).is_some_and(|o| o != Ordering::Less),
        FilterOp::LessThan(x) => cmp(at(x)?) == Some(Ordering::Less),
        FilterOp::LessOrEqual(x) => cmp(at(x)?).is_some_and(|o| o != Ordering::Greater),
        FilterOp::In(xs) => {
            if !xs.iter().any(|x| at(x).is_some()) {
                return None;
            }
            // Each operand by its own rule: times as instants, the rest by
            // the order of values.
            xs.iter().any(|x| match at(x) {
                Some(t) => cmp(t) == Some(Ordering::Equal),
                None => compare_values(v, x) == Ordering::Equal,
            })
        }
        _ => return None,
    })
}

/// A tree of filters: AND, OR and NOT over field filters. In JSON a node
/// is `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}`, or a field
/// filter as in `filters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// Every branch holds (true when empty).
    And(Vec<Filter>),
    /// Some branch holds (false when empty).
    Or(Vec<Filter>),
    /// The branch does not hold.
    Not(Box<Filter>),
    /// A field filter.
    #[serde(untagged)]
    Field(FieldFilter),
}

/// The deepest a filter tree may nest.
pub const MAX_FILTER_DEPTH: usize = 32;
/// The most field filters a query may hold.
pub const MAX_FILTERS: usize = 1024;

impl Filter {
    /// A field filter.
    pub fn field(field: &str, op: FilterOp) -> Filter {
        Filter::Field(FieldFilter {
            field: field.to_owned(),
            op,
        })
    }

    /// Every one of `branches`.
    pub fn all(branches: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::And(branches.into_iter().collect())
    }

    /// Any one of `branches`.
    pub fn any(branches: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::Or(branches.into_iter().collect())
    }

    /// Not `branch`.
    pub fn negate(branch: Filter) -> Filter {
        Filter::Not(Box::new(branch))
    }

    /// Whether `doc` passes the tree.
    pub fn matches(&self, doc: &Value) -> bool {
        match self {
            Filter::And(bs) => bs.iter().all(|b| b.matches(doc)),
            Filter::Or(bs) => bs.iter().any(|b| b.matches(doc)),
            Filter::Not(b) => !b.matches(doc),
            Filter::Field(f) => f.matches(doc),
        }
    }

    /// Checks depth, size and field paths; counts the field filters into
    /// `leaves`.
    fn check(&self, depth: usize, leaves: &mut usize) -> Result<(), String> {
        if depth > MAX_FILTER_DEPTH {
            return Err(format!(
                "a filter tree nests deeper than {MAX_FILTER_DEPTH}"
            ));
        }
        match self {
            Filter::And(bs) | Filter::Or(bs) => {
                bs.iter().try_for_each(|b| b.check(depth + 1, leaves))
            }
            Filter::Not(b) => b.check(depth + 1, leaves),
            Filter::Field(f) => {
                *leaves += 1;
                if *leaves > MAX_FILTERS {
                    return Err(format!("a query has at most {MAX_FILTERS} filters"));
                }
                value::check_path(&f.field)
            }
        }
    }
}

impl From<FieldFilter> for Filter {
    fn from(f: FieldFilter) -> Self {
        Filter::Field(f)
    }
}

/// A query over one collection: every filter and the filter tree must
/// hold; then `offset` results are skipped and at most `limit` returned.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DocumentQuery {
    /// The filters (a conjunction).
    pub filters: Vec<FieldFilter>,
    /// A tree of filters (AND, OR, NOT), which must hold as well.
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// At most this many results.
    pub limit: Option<usize>,
    /// Results skipped first.
    pub offset: usize,
    /// Operands that could not be turned into JSON, reported when the
    /// query runs.
    #[serde(skip)]
    pub(crate) invalid: Option<String>,
}

impl DocumentQuery {
    /// A query matching every document.
    pub fn new() -> Self {
        Self::default()
    }

    fn with(mut self, field: &str, op: FilterOp) -> Self {
        self.filters.push(FieldFilter {
            field: field.to_owned(),
            op,
        });
        self
    }

    fn operand<T: Serialize>(&mut self, field: &str, v: T) -> Value {
        if let Some(t) = time::from_operand(&v) {
            return time::operand(t);
        }
        serde_json::to_value(v).unwrap_or_else(|e| {
            self.invalid
                .get_or_insert_with(|| format!("the operand for {field:?} is not JSON: {e}"));
            Value::Null
        })
    }

    /// Adds a filter.
    pub fn with_filter(mut self, filter: FieldFilter) -> Self {
        self.filters.push(filter);
        self
    }

    /// `field == value`.
    pub fn with_field_equals(mut self, field: &str, value: impl Serialize) -> Self {
        let v = self.operand(field, value);
        self.with(field, FilterOp::Equals(v))
    }

    /// `field`'s whole value equals `value` (an array only an equal array).
    pub fn with_field_equals_whole(mut self, field: &str, value: impl Serialize) -> Self {
        let v = self.operand(field, value);
        self.with(field, FilterOp::EqualsWhole(v))
    }

    /// `field != value` (missing fields match).
    pub fn with_field_not_equals(mut self, field: &str, value: impl Serialize) -> Self {
        let v = self.operand(field, value);
        self.with(field, FilterOp::NotEquals(v))
    }

    /// `field > value`.
    pub fn with_field_greater_than(mut self, field: &str, value: impl Serialize) -> Self {
        let v = self.operand(field, value);
        self.with(field, FilterOp::GreaterThan(v))
    }

    /// `field >= value`.
    pub fn with_field_greater_or_equal(mut self, field: &str, value: impl Serialize) -> Self {
        let v = self.operand(field, value);
        self.with(field, FilterOp::GreaterOrEqual(v))
    }

    /// `field < value`.
    pub fn with_field_less_than(mut self, field: &str, value: impl Serialize) -> Self {
        let v = self.operand(field, value);
        self.with(field, FilterOp::LessThan(v))
    }

    /// `field <= value`.
    pub fn with_field_less_or_equal(mut self, field: &str, value: impl Serialize) -> Self {
        let v = self.operand(field, value);
        self.with(field, FilterOp::LessOrEqual(v))
    }

    /// `field` equals one of `values`.
    pub fn with_field_in<V: Serialize>(
        mut self,
        field: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        let vs = values.into_iter().map(|v| self.operand(field, v)).collect();
        self.with(field, FilterOp::In(vs))
    }

    /// `field` is present (`true`) or missing (`false`).
    pub fn with_field_exists(self, field: &str, exists: bool) -> Self {
        self.with(field, FilterOp::Exists(exists))
    }

    /// `field` is a string starting with `prefix`.
    pub fn with_field_prefix(self, field: &str, prefix: impl Into<String>) -> Self {
        self.with(field, FilterOp::Prefix(prefix.into()))
    }

    /// At most `n` results.
    pub fn with_limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` results.
    pub fn with_offset(mut self, n: usize) -> Self {
        self.offset = n;
        self
    }

    /// Whether `doc` passes every filter.
    pub fn matches(&self, doc: &Value) -> bool {
        self.filters.iter().all(|f| f.matches(doc))
            && self.filter.as_ref().is_none_or(|t| t.matches(doc))
    }

    /// Adds `tree`, ANDed with the filters and any tree already there.
    pub fn with_where(mut self, tree: Filter) -> Self {
        self.filter = Some(match self.filter.take() {
            None => tree,
            Some(Filter::And(mut bs)) => {
                bs.push(tree);
                Filter::And(bs)
            }
            Some(t) => Filter::And(vec![t, tree]),
        });
        self
    }

    /// Checks the query: field paths well formed, operands JSON, the tree
    /// bounded.
    pub(crate) fn check(&self) -> Result<(), String> {
        if let Some(e) = &self.invalid {
            return Err(e.clone());
        }
        let mut leaves = self.filters.len();
        if leaves > MAX_FILTERS {
            return Err(format!("a query has at most {MAX_FILTERS} filters"));
        }
        for f in &self.filters {
            value::check_path(&f.field)?;
        }
        if let Some(t) = &self.filter {
            t.check(0, &mut leaves)?;
        }
        Ok(())
    }

    /// Whether a field filter anywhere in the query (its list or its tree,
    /// under any AND, OR or NOT) is on `field`: an index whose first field
    /// none names cannot serve the query, so the planner need not read its
    /// marker or statistics.
    pub(crate) fn names_field(&self, field: &str) -> bool {
        fn walk(t: &Filter, field: &str) -> bool {
            match t {
                Filter::And(bs) | Filter::Or(bs) => bs.iter().any(|b| walk(b, field)),
                Filter::Not(b) => walk(b, field),
                Filter::Field(f) => f.field == field,
            }
        }
        self.filters.iter().any(|f| f.field == field)
            || self.filter.as_ref().is_some_and(|t| walk(t, field))
    }

    /// The field filters every result must pass: `filters`, and those the
    /// tree ANDs at its top. The OR nodes the tree ANDs at its top come
    /// second.
    pub(crate) fn conjuncts(&self) -> Conjuncts<'_> {
        fn walk<'a>(t: &'a Filter, c: &mut Conjuncts<'a>) {
            match t {
                Filter::And(bs) => bs.iter().for_each(|b| walk(b, c)),
                Filter::Or(bs) => c.ors.push(bs),
                Filter::Field(f) => c.leaves.push(f),
                Filter::Not(_) => c.complete = false,
            }
        }
        let mut c = Conjuncts {
            leaves: self.filters.iter().collect(),
            ors: Vec::new(),
            complete: true,
        };
        if let Some(t) = &self.filter {
            walk(t, &mut c);
        }
        c.complete &= c.ors.is_empty();
        c
    }
}

/// A query's top-level conjunction, as the planner reads it.
pub(crate) struct Conjuncts<'a> {
    /// The field filters every result passes.
    pub(crate) leaves: Vec<&'a FieldFilter>,
    /// The ORs every result passes.
    pub(crate) ors: Vec<&'a [Filter]>,
    /// The leaves are the whole query (no OR, no NOT).
    pub(crate) complete: bool,
}

/// A sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Smallest first.
    #[default]
    Ascending,
    /// Largest first.
    Descending,
}

/// How a query runs: its order, the time it reads at, the transaction it
/// reads in.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct QueryOptions {
    /// Sort by this field (documents missing it first when ascending),
    /// ties by id; without it, results come in id order.
    pub sort_field: Option<String>,
    /// The direction; descending is the exact reverse of ascending, ties
    /// included.
    pub sort_order: SortOrder,
    /// Read the state as of this time (within the history window).
    pub at: Option<Timestamp>,
    /// Read inside this transaction, seeing its own writes.
    pub transaction: Option<TransactionId>,
    /// Never use an index (for comparisons and diagnosis).
    pub force_scan: bool,
    /// Return only these field paths of each document (nested paths as
    /// nested objects; missing ones left out); all of it without.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection: Option<Vec<String>>,
    /// Continue after the page this cursor ends (`DocumentPage::next`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl QueryOptions {
    /// Id order, now, outside any transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sorts by `field` in `order`.
    pub fn with_sort_field(mut self, field: &str, order: SortOrder) -> Self {
        self.sort_field = Some(field.to_owned());
        self.sort_order = order;
        self
    }

    /// Reads the state as of `ts`.
    pub fn at(mut self, ts: Timestamp) -> Self {
        self.at = Some(ts);
        self
    }

    /// Reads inside `tx`, seeing its own writes.
    pub fn with_transaction(mut self, tx: &StorageTransaction) -> Self {
        self.transaction = Some(tx.id);
        self
    }

    /// Returns only `fields` of each document.
    pub fn with_projection<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.projection = Some(fields.into_iter().map(Into::into).collect());
        self
    }

    /// Continues after the page `cursor` ends.
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Never uses an index.
    pub fn force_scan(mut self) -> Self {
        self.force_scan = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_follow_the_documented_semantics() {
        let d = json!({"n": 5, "s": "abc", "z": null, "o": {"x": [1, 2]}});
        let q = |f: FieldFilter| f.matches(&d);
        let f = |field: &str, op| FieldFilter {
            field: field.into(),
            op,
        };
        assert!(q(f("n", FilterOp::Equals(json!(5.0)))));
        assert!(q(f("missing", FilterOp::NotEquals(json!(1)))));
        assert!(!q(f("missing", FilterOp::Equals(Value::Null))));
        assert!(q(f("z", FilterOp::Equals(Value::Null))));
        assert!(q(f("n", FilterOp::GreaterThan(json!(4)))));
        // A range never crosses kinds: a string is not "greater" than 4.
        assert!(!q(f("s", FilterOp::GreaterThan(json!(4)))));
        assert!(q(f("s", FilterOp::LessOrEqual(json!("abc")))));
        assert!(q(f("o.x.1", FilterOp::In(vec![json!(3), json!(2)]))));
        assert!(q(f("z", FilterOp::Exists(true))));
        assert!(q(f("q", FilterOp::Exists(false))));
        assert!(q(f("s", FilterOp::Prefix("ab".into()))));
        assert!(!q(f("n", FilterOp::Prefix("5".into()))));
    }

    #[test]
    fn queries_round_trip_through_json() {
        let q = DocumentQuery::new()
            .with_field_equals("type", "document")
            .with_field_greater_than("created_at", Timestamp(42))
            .with_field_in("tags", ["a", "b"])
            .with_field_exists("x", false)
            .with_field_prefix("name", "ad")
            .with_limit(100)
            .with_offset(3);
        let text = serde_json::to_string(&q).unwrap();
        // A timestamp operand is a time, not a number (SPEC §17.3).
        assert!(
            text.contains(r#""op":"greater_than","value":{"$time":42}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<DocumentQuery>(&text).unwrap(), q);
        let o = QueryOptions::new()
            .with_sort_field("created_at", SortOrder::Descending)
            .at(Timestamp(7));
        let text = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<QueryOptions>(&text).unwrap(), o);
        let parsed: DocumentQuery =
            serde_json::from_str(r#"{"filters":[{"field":"a","op":"exists","value":true}]}"#)
                .unwrap();
        assert_eq!(parsed, DocumentQuery::new().with_field_exists("a", true));
    }
}
