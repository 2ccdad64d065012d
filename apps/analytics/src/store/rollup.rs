//! Rollups: each link's clicks counted per hour and per day (clicks, bot
//! clicks, unique visitors) and per day and dimension value, kept beside the
//! raw clicks. A stats query reads whole buckets from them and only the
//! ragged edges of its range from raw rows, so a link's stats cost the same
//! whether it has a hundred clicks or ten million.
//!
//! Unique visitors are counted per UTC day: the shortener's visitor key
//! rotates daily (`shortener.url.clicked`), so a visitor on two days is two
//! keys, and the visitors of a range are the sum of its days' distinct keys,
//! exactly. Hourly buckets hold the distinct keys of the hour.

/// How long after its marking a dirty bucket is compacted (ClickHouse):
/// longer than any insert takes to become visible, so none is passed over.
pub const SETTLE_US: i64 = 10_000_000;

/// How a range `[from, to)` of one link is answered at a bucket size:
/// `core`, whole buckets from the rollups, and `raw`, the rest from raw
/// rows (at most two partial buckets, at the ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub core: Option<(i64, i64)>,
    pub raw: Vec<(i64, i64)>,
}

/// The start of the bucket holding `t`.
pub fn floor(t: i64, size: i64) -> i64 {
    t.div_euclid(size) * size
}

/// The start of the first bucket at or after `t`.
pub fn ceil(t: i64, size: i64) -> i64 {
    floor(t + size - 1, size)
}

/// Splits `[from, to)`. `before_from_empty` says the link has no clicks in
/// `[floor(from), from)`, and `after_to_empty` none in `[to, ceil(to))`:
/// then the bucket cut by that end is whole as far as the link's clicks go,
/// and is read from the rollups too. (The default all-time range starts at
/// the first click and ends now, so it is read from rollups alone.)
pub fn plan(from: i64, to: i64, size: i64, before_from_empty: bool, after_to_empty: bool) -> Plan {
    if from >= to {
        return Plan {
            core: None,
            raw: Vec::new(),
        };
    }
    let start_whole = from == floor(from, size) || before_from_empty;
    let end_whole = to == ceil(to, size) || after_to_empty;
    let core_from = if start_whole {
        floor(from, size)
    } else {
        ceil(from, size)
    };
    let core_to = if end_whole {
        ceil(to, size)
    } else {
        floor(to, size)
    };
    if core_from >= core_to {
        return Plan {
            core: None,
            raw: vec![(from, to)],
        };
    }
    let mut raw = Vec::new();
    if !start_whole {
        raw.push((from, core_from));
    }
    if !end_whole {
        raw.push((core_to, to));
    }
    Plan {
        core: Some((core_from, core_to)),
        raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn whole_buckets_come_from_rollups_and_edges_from_raw_rows() {
        // Aligned: rollups only.
        assert_eq!(
            plan(0, 3 * DAY, DAY, false, false),
            Plan {
                core: Some((0, 3 * DAY)),
                raw: vec![]
            }
        );
        // Cut at both ends, with clicks in the parts cut off.
        assert_eq!(
            plan(100, 3 * DAY - 100, DAY, false, false),
            Plan {
                core: Some((DAY, 2 * DAY)),
                raw: vec![(100, DAY), (2 * DAY, 3 * DAY - 100)]
            }
        );
        // Nothing before the start or after the end: whole buckets.
        assert_eq!(
            plan(100, 3 * DAY - 100, DAY, true, true),
            Plan {
                core: Some((0, 3 * DAY)),
                raw: vec![]
            }
        );
        // Within one bucket: raw, unless the bucket is whole for the link.
        assert_eq!(
            plan(100, 200, DAY, false, true),
            Plan {
                core: None,
                raw: vec![(100, 200)]
            }
        );
        assert_eq!(
            plan(100, 200, DAY, true, true),
            Plan {
                core: Some((0, DAY)),
                raw: vec![]
            }
        );
        // Two partial buckets and none whole.
        assert_eq!(
            plan(DAY - 10, DAY + 10, DAY, false, false),
            Plan {
                core: None,
                raw: vec![(DAY - 10, DAY + 10)]
            }
        );
        // Empty ranges read nothing.
        assert_eq!(plan(5, 5, DAY, true, true).raw, Vec::<(i64, i64)>::new());
        assert_eq!(ceil(-1, DAY), 0);
        assert_eq!(floor(-1, DAY), -DAY);
    }
}
