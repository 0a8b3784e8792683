//! Window state of one output: merged partial aggregates per tenant, group
//! key and window, ordered by window start so windows close in event-time
//! order as the watermark passes their end.

use crate::plan::{Merge, WindowKind};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Window {
    pub start: i64,
    pub end: i64,
    pub aggs: Vec<Value>,
    pub closed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Group {
    pub tenant: String,
    pub keys: Vec<Value>,
    /// Windows by start time.
    pub windows: BTreeMap<i64, Window>,
}

/// A window identified by its group and start, for changed-window sets.
pub(crate) type WindowRef = (String, i64);

/// A session that another session absorbed: its result row is deleted.
#[derive(Debug, Clone)]
pub(crate) struct Retraction {
    pub group: String,
    pub tenant: String,
    pub start: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct OutputState {
    /// Groups by a JSON key of tenant and key values.
    pub groups: BTreeMap<String, Group>,
    /// Events that arrived after their windows were past the allowed lateness.
    pub dropped_late: u64,
    /// The same, per tenant.
    #[serde(default)]
    pub dropped_late_by_tenant: BTreeMap<String, u64>,
    /// Rows of new windows refused per tenant because the tenant had the
    /// most open windows allowed.
    #[serde(default)]
    pub dropped_over_limit_by_tenant: BTreeMap<String, u64>,
    /// Rows of closed windows removed per tenant to keep the live results
    /// within `max_result_rows`.
    #[serde(default)]
    pub rows_trimmed_by_tenant: BTreeMap<String, u64>,
    /// Open windows per tenant, counted from `groups` on first use and
    /// kept up to date after that.
    #[serde(skip)]
    open_by_tenant: Option<BTreeMap<String, usize>>,
    /// Events this output aggregated.
    pub accepted: u64,
}

/// Windows that all pipelines sharing it may hold in memory together, so
/// many tenants each within their own `max_open_windows` still cannot
/// exhaust the host. Each pipeline counts its windows in and out.
// NOTE: result rows that outlive their windows are not counted, so live
// rows still grow with the number of tenants (each up to
// `max_result_rows` per output). Counting them here would stop new
// windows for everyone until rows expire; a host-wide trim of the oldest
// closed rows would be the fuller bound.
#[derive(Debug)]
pub struct WindowBudget {
    limit: usize,
    used: AtomicUsize,
}

impl WindowBudget {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Returns a budget that never rejects a window.
    pub fn unlimited() -> Self {
        Self::new(usize::MAX)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Returns the windows held now by the pipelines that share it.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes room for one window, or returns false when none is left.
    pub(crate) fn try_take(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.limit).then_some(used + 1)
            })
            .is_ok()
    }

    /// Counts windows that are already held, such as those restored from a
    /// checkpoint, even past the limit.
    pub(crate) fn add(&self, windows: usize) {
        self.used.fetch_add(windows, Ordering::AcqRel);
    }

    pub(crate) fn release(&self, windows: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(windows))
            });
    }
}

pub(crate) fn group_id(tenant: &str, keys: &[Value]) -> String {
    serde_json::to_string(&(tenant, keys)).expect("values serialize")
}

/// True when every window of an event at `ts` is past the allowed lateness.
pub(crate) fn is_expired(
    window: WindowKind,
    ts: i64,
    watermark: Option<i64>,
    lateness: i64,
) -> bool {
    match watermark {
        None => false,
        Some(wm) => window.latest_end(ts).saturating_add(lateness) <= wm,
    }
}

impl OutputState {
    fn open_counts(&mut self) -> &mut BTreeMap<String, usize> {
        let groups = &self.groups;
        self.open_by_tenant.get_or_insert_with(|| {
            let mut counts = BTreeMap::new();
            for group in groups.values() {
                *counts.entry(group.tenant.clone()).or_default() += group.windows.len();
            }
            counts
        })
    }

    /// Returns the windows this output holds, over all tenants.
    pub(crate) fn window_count(&mut self) -> usize {
        self.open_counts().values().sum()
    }

    /// Merges one partial row into its window. Rows of windows past the
    /// allowed lateness are ignored (an event whose every window expired was
    /// already counted as dropped). A row that would open a window when its
    /// tenant already has `max_open` open windows, or when `budget` has no
    /// room left, is rejected and counted.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn merge_row(
        &mut self,
        kind: WindowKind,
        merges: &[Merge],
        tenant: String,
        keys: Vec<Value>,
        start: i64,
        aggs: Vec<Value>,
        watermark: Option<i64>,
        lateness: i64,
        max_open: usize,
        budget: &WindowBudget,
        changed: &mut BTreeSet<WindowRef>,
        retracted: &mut Vec<Retraction>,
    ) {
        let end = match kind {
            WindowKind::Tumble { width_ms } => start + width_ms,
            WindowKind::Hop { width_ms, .. } => start + width_ms,
            WindowKind::Session { gap_ms } => start + gap_ms,
        };
        if watermark.is_some_and(|wm| end.saturating_add(lateness) <= wm) {
            return;
        }
        let id = group_id(&tenant, &keys);
        let opens_window = self.groups.get(&id).is_none_or(|g| match kind {
            WindowKind::Session { .. } => !g.windows.range(..end).any(|(_, w)| w.end > start),
            _ => !g.windows.contains_key(&start),
        });
        if opens_window {
            let open = self.open_counts().get(&tenant).copied().unwrap_or(0);
            if open >= max_open || !budget.try_take() {
                *self.dropped_over_limit_by_tenant.entry(tenant).or_default() += 1;
                return;
            }
            *self.open_counts().entry(tenant.clone()).or_default() += 1;
        }
        let group = self.groups.entry(id.clone()).or_insert_with(|| Group {
            tenant: tenant.clone(),
            keys,
            windows: BTreeMap::new(),
        });

        let mut window = Window {
            start,
            end,
            aggs,
            closed: false,
        };
        if let WindowKind::Session { .. } = kind {
            // Absorb every session this one overlaps; a new event can bridge
            // two sessions into one.
            let overlapping: Vec<i64> = group
                .windows
                .range(..end)
                .filter(|(_, w)| w.end > start)
                .map(|(s, _)| *s)
                .collect();
            let absorbed = overlapping.len().saturating_sub(1);
            for old_start in overlapping {
                let old = group.windows.remove(&old_start).expect("listed above");
                window.start = window.start.min(old.start);
                window.end = window.end.max(old.end);
                window.closed = false;
                window.aggs = merge_aggs(window.aggs, old.aggs, merges);
                changed.remove(&(id.clone(), old_start));
                retracted.push(Retraction {
                    group: id.clone(),
                    tenant: tenant.clone(),
                    start: old_start,
                });
            }
            retracted.retain(|r| !(r.group == id && r.start == window.start));
            changed.insert((id.clone(), window.start));
            group.windows.insert(window.start, window);
            // Sessions absorbed into this one are no longer open windows.
            if absorbed > 0 {
                let count = self.open_counts().entry(tenant).or_default();
                *count = count.saturating_sub(absorbed);
                budget.release(absorbed);
            }
            return;
        }

        match group.windows.get_mut(&start) {
            Some(existing) => {
                let old = std::mem::take(&mut existing.aggs);
                existing.aggs = merge_aggs(old, window.aggs, merges);
            }
            None => {
                group.windows.insert(start, window);
            }
        }
        changed.insert((id, start));
    }

    /// Closes windows whose end their tenant's watermark passed. Closed
    /// windows are added to `changed`.
    pub(crate) fn advance(
        &mut self,
        watermark_of: impl Fn(&str) -> Option<i64>,
        changed: &mut BTreeSet<WindowRef>,
    ) {
        for (id, group) in self.groups.iter_mut() {
            let Some(watermark) = watermark_of(&group.tenant) else {
                continue;
            };
            for window in group.windows.values_mut() {
                if !window.closed && window.end <= watermark {
                    window.closed = true;
                    changed.insert((id.clone(), window.start));
                }
            }
        }
    }

    /// Drops windows past the allowed lateness, and groups left empty. This
    /// runs after the final rows are computed, so a window that closes and
    /// expires in the same step still emits its result.
    pub(crate) fn evict(
        &mut self,
        watermark_of: impl Fn(&str) -> Option<i64>,
        lateness: i64,
        budget: &WindowBudget,
    ) {
        let mut evicted: BTreeMap<String, usize> = BTreeMap::new();
        for group in self.groups.values_mut() {
            let Some(watermark) = watermark_of(&group.tenant) else {
                continue;
            };
            let before = group.windows.len();
            group
                .windows
                .retain(|_, w| w.end.saturating_add(lateness) > watermark);
            if group.windows.len() < before {
                *evicted.entry(group.tenant.clone()).or_default() += before - group.windows.len();
            }
        }
        budget.release(evicted.values().sum());
        if let Some(counts) = self.open_by_tenant.as_mut() {
            for (tenant, n) in evicted {
                let count = counts.entry(tenant).or_default();
                *count = count.saturating_sub(n);
            }
        }
        self.groups.retain(|_, g| !g.windows.is_empty());
    }

    pub(crate) fn window(&self, reference: &WindowRef) -> Option<(&Group, &Window)> {
        let group = self.groups.get(&reference.0)?;
        Some((group, group.windows.get(&reference.1)?))
    }
}

fn merge_aggs(a: Vec<Value>, b: Vec<Value>, merges: &[Merge]) -> Vec<Value> {
    a.into_iter()
        .zip(b)
        .zip(merges)
        .map(|((x, y), m)| x.merge(y, *m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge_limited(
        state: &mut OutputState,
        kind: WindowKind,
        start: i64,
        max_open: usize,
    ) -> Vec<Retraction> {
        merge_in(state, kind, start, max_open, &WindowBudget::unlimited())
    }

    fn merge_in(
        state: &mut OutputState,
        kind: WindowKind,
        start: i64,
        max_open: usize,
        budget: &WindowBudget,
    ) -> Vec<Retraction> {
        let mut changed = BTreeSet::new();
        let mut retracted = Vec::new();
        state.merge_row(
            kind,
            &[Merge::Sum],
            "t".into(),
            vec![],
            start,
            vec![Value::Int(1)],
            None,
            0,
            max_open,
            budget,
            &mut changed,
            &mut retracted,
        );
        retracted
    }

    fn merge(state: &mut OutputState, kind: WindowKind, start: i64, count: i64) -> Vec<Retraction> {
        assert_eq!(count, 1);
        merge_limited(state, kind, start, usize::MAX)
    }

    fn open(state: &mut OutputState) -> usize {
        state.open_counts().get("t").copied().unwrap_or(0)
    }

    #[test]
    fn open_window_limit_refuses_new_windows_only() {
        let kind = WindowKind::Tumble { width_ms: 10 };
        let mut state = OutputState::default();
        merge_limited(&mut state, kind, 0, 2);
        merge_limited(&mut state, kind, 10, 2);
        merge_limited(&mut state, kind, 20, 2);
        assert_eq!(state.groups.values().next().unwrap().windows.len(), 2);
        assert_eq!(state.dropped_over_limit_by_tenant["t"], 1);
        // An open window still takes rows.
        merge_limited(&mut state, kind, 10, 2);
        assert_eq!(
            state.groups.values().next().unwrap().windows[&10].aggs,
            vec![Value::Int(2)]
        );
        assert_eq!(state.dropped_over_limit_by_tenant["t"], 1);
        // Evicting frees room.
        state.evict(|_| Some(15), 0, &WindowBudget::unlimited());
        assert_eq!(open(&mut state), 1);
        merge_limited(&mut state, kind, 20, 2);
        assert_eq!(open(&mut state), 2);
    }

    #[test]
    fn shared_budget_refuses_windows_of_any_output() {
        let kind = WindowKind::Tumble { width_ms: 10 };
        let budget = WindowBudget::new(3);
        let (mut first, mut second) = (OutputState::default(), OutputState::default());
        merge_in(&mut first, kind, 0, 100, &budget);
        merge_in(&mut first, kind, 10, 100, &budget);
        merge_in(&mut second, kind, 0, 100, &budget);
        merge_in(&mut second, kind, 10, 100, &budget);
        assert_eq!(budget.used(), 3);
        assert_eq!(second.dropped_over_limit_by_tenant["t"], 1);
        // A window that is already open still takes rows.
        merge_in(&mut second, kind, 0, 100, &budget);
        assert_eq!(second.dropped_over_limit_by_tenant["t"], 1);

        // Evicting in one output makes room in the other.
        first.evict(|_| Some(15), 0, &budget);
        assert_eq!(budget.used(), 2);
        merge_in(&mut second, kind, 10, 100, &budget);
        assert_eq!(budget.used(), 3);
        assert_eq!(second.window_count(), 2);

        // Sessions absorbed into one give their room back.
        let sessions = WindowBudget::new(10);
        let mut state = OutputState::default();
        let kind = WindowKind::Session { gap_ms: 10 };
        merge_in(&mut state, kind, 0, 100, &sessions);
        merge_in(&mut state, kind, 25, 100, &sessions);
        merge_in(&mut state, kind, 8, 100, &sessions);
        merge_in(&mut state, kind, 16, 100, &sessions);
        assert_eq!(state.window_count(), 1);
        assert_eq!(sessions.used(), 1);
    }

    #[test]
    fn merged_sessions_free_their_count() {
        let kind = WindowKind::Session { gap_ms: 10 };
        let mut state = OutputState::default();
        merge(&mut state, kind, 0, 1);
        merge(&mut state, kind, 25, 1);
        assert_eq!(open(&mut state), 2);
        merge(&mut state, kind, 16, 1);
        assert_eq!(open(&mut state), 2, "16 joined the session at 25");
        merge(&mut state, kind, 8, 1);
        assert_eq!(open(&mut state), 1, "8 bridged the two sessions");
    }

    #[test]
    fn session_bridges_two_sessions() {
        let kind = WindowKind::Session { gap_ms: 10 };
        let mut state = OutputState::default();
        merge(&mut state, kind, 0, 1);
        merge(&mut state, kind, 25, 1);
        assert_eq!(state.groups.values().next().unwrap().windows.len(), 2);

        // 16 is within the gap of the session at 25 but not of the one at
        // 0, which ends at 10: it joins only the second.
        let retracted = merge(&mut state, kind, 16, 1);
        let windows = &state.groups.values().next().unwrap().windows;
        assert_eq!(windows.len(), 2);
        assert_eq!(retracted.len(), 1);
        let second = windows.get(&16).unwrap();
        assert_eq!(second.end, 35);
        assert_eq!(second.aggs, vec![Value::Int(2)]);

        // 8 is within 10 of 0 and of 16: the three become one session.
        merge(&mut state, kind, 8, 1);
        let windows = &state.groups.values().next().unwrap().windows;
        assert_eq!(windows.len(), 1);
        let only = windows.get(&0).unwrap();
        assert_eq!((only.start, only.end), (0, 35));
        assert_eq!(only.aggs, vec![Value::Int(4)]);
    }
}
