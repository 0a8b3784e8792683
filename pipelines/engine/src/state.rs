//! Window state of one output: merged partial aggregates per tenant, group
//! key and window, ordered by window start so windows close in event-time
//! order as the watermark passes their end.

use crate::plan::{Merge, WindowKind};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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
    /// Events this output aggregated.
    pub accepted: u64,
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
    /// Merges one partial row into its window. Rows of windows past the
    /// allowed lateness are ignored (an event whose every window expired was
    /// already counted as dropped).
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
    pub(crate) fn evict(&mut self, watermark_of: impl Fn(&str) -> Option<i64>, lateness: i64) {
        for group in self.groups.values_mut() {
            let Some(watermark) = watermark_of(&group.tenant) else {
                continue;
            };
            group
                .windows
                .retain(|_, w| w.end.saturating_add(lateness) > watermark);
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

    fn merge(state: &mut OutputState, kind: WindowKind, start: i64, count: i64) -> Vec<Retraction> {
        let mut changed = BTreeSet::new();
        let mut retracted = Vec::new();
        state.merge_row(
            kind,
            &[Merge::Sum],
            "t".into(),
            vec![],
            start,
            vec![Value::Int(count)],
            None,
            0,
            &mut changed,
            &mut retracted,
        );
        retracted
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
