//! The arithmetic of a rolling update (upstream `deployment/util` and `rolling.go`): how far
//! the new ReplicaSet may grow and how far the old ones may shrink in one step, with
//! maxSurge rounded up and maxUnavailable rounded down.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::Error;

/// An integer or a percentage of `total` (upstream's `GetScaledValueFromIntOrPercent`).
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, Error> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let percent: i64 = s.strip_suffix('%').and_then(|n| n.parse().ok()).ok_or_else(|| Error::Invalid {
                field: "intOrPercent",
                message: format!("invalid value for IntOrString: invalid type: string is not a percentage: {s:?}"),
            })?;
            let scaled = percent * i64::from(total);
            let v = if round_up { (scaled + 99).div_euclid(100) } else { scaled.div_euclid(100) };
            Ok(i32::try_from(v).unwrap_or(i32::MAX))
        }
    }
}

/// `(maxSurge, maxUnavailable)` for `desired` replicas; both zero would deadlock, so
/// unavailable becomes 1 (upstream's `ResolveFenceposts`).
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), Error> {
    let quarter = IntOrString::String("25%".into());
    let surge = scaled_value(max_surge.unwrap_or(&quarter), desired, true)?;
    let unavailable = scaled_value(max_unavailable.unwrap_or(&quarter), desired, false)?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

/// The size the new ReplicaSet may grow to now: total pods stay within desired + surge.
pub fn new_rs_replicas(desired: i32, max_surge: i32, total_replicas: i32, new_replicas: i32) -> i32 {
    let max_total = desired + max_surge;
    if total_replicas >= max_total {
        return new_replicas;
    }
    let up = (max_total - total_replicas).min(desired - new_replicas);
    new_replicas + up.max(0)
}

/// Spec replicas and available replicas of one ReplicaSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub available: i32,
}

/// New sizes for the old ReplicaSets (oldest first) so that at least `desired - max_unavailable`
/// pods stay available: first unhealthy replicas go, then available ones down to that floor
/// (upstream's `reconcileOldReplicaSets`).
pub fn scale_down_old(desired: i32, max_unavailable: i32, new: Counts, old: &[Counts]) -> Vec<i32> {
    let mut sizes: Vec<i32> = old.iter().map(|c| c.replicas).collect();
    let old_total: i32 = sizes.iter().sum();
    if old_total == 0 {
        return sizes;
    }
    let all_total = old_total + new.replicas;
    let min_available = desired - max_unavailable.min(desired);
    let new_unavailable = new.replicas - new.available;
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return sizes;
    }
    let mut cleaned = 0;
    for (size, c) in sizes.iter_mut().zip(old) {
        if cleaned >= max_scaled_down {
            break;
        }
        if *size == 0 || *size == c.available {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(*size - c.available);
        *size -= down;
        cleaned += down;
    }
    let all_available: i32 = old.iter().map(|c| c.available).sum::<i32>() + new.available;
    let to_scale_down = all_available - min_available;
    let mut scaled = 0;
    for size in sizes.iter_mut() {
        if scaled >= to_scale_down {
            break;
        }
        if *size == 0 {
            continue;
        }
        let down = (*size).min(to_scale_down - scaled);
        *size -= down;
        scaled += down;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn rounding_table() {
        let cases = [
            (IntOrString::Int(2), 10, true, 2),
            (pct("25%"), 10, true, 3),
            (pct("25%"), 10, false, 2),
            (pct("25%"), 3, true, 1),
            (pct("25%"), 3, false, 0),
            (pct("50%"), 5, true, 3),
            (pct("50%"), 5, false, 2),
            (pct("100%"), 7, false, 7),
            (pct("0%"), 7, true, 0),
        ];
        for (v, total, up, want) in cases {
            assert_eq!(scaled_value(&v, total, up).unwrap(), want, "{v:?} of {total} up={up}");
        }
        assert!(scaled_value(&pct("x%"), 3, true).is_err());
        assert!(scaled_value(&pct("25"), 3, true).is_err());
    }

    #[test]
    fn fenceposts_table() {
        let cases = [
            (None, None, 3, (1, 0)),
            (None, None, 4, (1, 1)),
            (Some(IntOrString::Int(0)), Some(IntOrString::Int(0)), 3, (0, 1)),
            (Some(pct("0%")), Some(pct("10%")), 3, (0, 1)),
            (Some(IntOrString::Int(1)), Some(IntOrString::Int(1)), 3, (1, 1)),
            (Some(pct("50%")), Some(pct("50%")), 3, (2, 1)),
        ];
        for (surge, unavailable, desired, want) in cases {
            assert_eq!(
                resolve_fenceposts(surge.as_ref(), unavailable.as_ref(), desired).unwrap(),
                want,
                "{surge:?} {unavailable:?} {desired}"
            );
        }
    }

    /// Plays whole rollouts step by step as controller and (instant) kubelet, recording
    /// (new, old) spec sizes after each scaling step.
    fn simulate(desired: i32, surge: i32, unavailable: i32, old_start: i32, slow_new: bool) -> Vec<(i32, i32)> {
        let mut new = Counts { replicas: 0, available: 0 };
        let mut old = Counts { replicas: old_start, available: old_start };
        let mut steps = Vec::new();
        for _ in 0..50 {
            let grown = new_rs_replicas(desired, surge, new.replicas + old.replicas, new.replicas);
            if grown != new.replicas {
                new.replicas = grown;
            } else {
                let shrunk = scale_down_old(desired, unavailable, new, &[old])[0];
                if shrunk == old.replicas {
                    // Nothing to scale: pods become available, or the rollout is done.
                    if new.available == new.replicas && old.replicas == 0 {
                        break;
                    }
                    new.available = if slow_new { (new.available + 1).min(new.replicas) } else { new.replicas };
                    old.available = old.replicas;
                    continue;
                }
                old.replicas = shrunk;
                old.available = old.available.min(shrunk);
            }
            steps.push((new.replicas, old.replicas));
            let total = new.replicas + old.replicas;
            assert!(total <= desired + surge, "surge exceeded: {steps:?}");
            assert!(new.available + old.available >= desired - unavailable, "too few available: {steps:?}");
        }
        steps
    }

    #[test]
    fn rollout_steps_table() {
        let cases: [(i32, i32, i32, bool, &[(i32, i32)]); 5] = [
            // 3 replicas, surge 1, unavailable 1: one surge pod, one old pod may be missing.
            (3, 1, 1, false, &[(1, 3), (1, 2), (2, 2), (2, 0), (3, 0)]),
            // surge only: one new up, one old down.
            (3, 1, 0, false, &[(1, 3), (1, 2), (2, 2), (2, 1), (3, 1), (3, 0)]),
            // unavailable only: shrink first, then replace.
            (3, 0, 1, false, &[(0, 2), (1, 2), (1, 1), (2, 1), (2, 0), (3, 0)]),
            // 25%/25% of 10 → surge 3, unavailable 2.
            (10, 3, 2, false, &[(3, 10), (3, 8), (5, 8), (5, 3), (10, 3), (10, 0)]),
            // Slow new pods: old shrinks only as new pods become available.
            (3, 1, 0, true, &[(1, 3), (1, 2), (2, 2), (2, 1), (3, 1), (3, 0)]),
        ];
        for (desired, surge, unavailable, slow, want) in cases {
            assert_eq!(simulate(desired, surge, unavailable, desired, slow), want, "{desired} {surge} {unavailable}");
        }
    }

    #[test]
    fn unhealthy_old_replicas_go_first() {
        // Old RS of 3 with only 1 available (below the floor of 2): a broken pod still goes,
        // as it costs no availability.
        let sizes = scale_down_old(3, 1, Counts { replicas: 0, available: 0 }, &[Counts { replicas: 3, available: 1 }]);
        assert_eq!(sizes, [2]);
        // A new set with unavailable pods blocks further scale-down.
        let sizes = scale_down_old(3, 1, Counts { replicas: 2, available: 0 }, &[Counts { replicas: 2, available: 2 }]);
        assert_eq!(sizes, [2]);
        // Two old sets: the oldest shrinks first.
        let sizes = scale_down_old(
            4,
            2,
            Counts { replicas: 0, available: 0 },
            &[Counts { replicas: 2, available: 2 }, Counts { replicas: 2, available: 2 }],
        );
        assert_eq!(sizes, [0, 2]);
    }
}
