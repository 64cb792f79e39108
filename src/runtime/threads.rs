//! Sizing the Tokio runtime from the CPU the process may really use: in a container with a CPU
//! limit, the cgroup quota, not the host's core count.

/// `cpu.max` (cgroup v2) as "quota period" or "max period" → CPUs allowed, rounded up.
pub fn cpus_from_cpu_max(text: &str) -> Option<usize> {
    let mut parts = text.split_whitespace();
    let quota = parts.next()?;
    let period: f64 = parts.next()?.parse().ok()?;
    if quota == "max" || period <= 0.0 {
        return None;
    }
    let quota: f64 = quota.parse().ok()?;
    Some(((quota / period).ceil() as usize).max(1))
}

/// Worker threads: the configured number, else min(CPUs visible, cgroup quota).
pub fn worker_threads(configured: Option<usize>) -> usize {
    if let Some(n) = configured {
        return n;
    }
    let visible = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/cpu.max")
        .ok()
        .and_then(|t| cpus_from_cpu_max(&t));
    let v1 = || {
        let q = std::fs::read_to_string("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").ok()?;
        let p = std::fs::read_to_string("/sys/fs/cgroup/cpu/cpu.cfs_period_us").ok()?;
        let q: i64 = q.trim().parse().ok()?;
        if q <= 0 {
            return None;
        }
        cpus_from_cpu_max(&format!("{q} {}", p.trim()))
    };
    match v2.or_else(v1) {
        Some(quota) => visible.min(quota),
        None => visible,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_is_rounded_up_and_unlimited_is_none() {
        assert_eq!(cpus_from_cpu_max("max 100000\n"), None);
        assert_eq!(cpus_from_cpu_max("150000 100000"), Some(2));
        assert_eq!(cpus_from_cpu_max("50000 100000"), Some(1));
        assert_eq!(cpus_from_cpu_max("400000 100000"), Some(4));
        assert_eq!(cpus_from_cpu_max("garbage"), None);
    }

    #[test]
    fn configured_count_wins() {
        assert_eq!(worker_threads(Some(3)), 3);
        assert!(worker_threads(None) >= 1);
    }
}
