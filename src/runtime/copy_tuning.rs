//! Keeps glibc's `memcpy` off `rep movsb` on AMD processors, where it can be thirty times
//! slower than the vector loop it replaces.
//!
//! On AMD Zen cores, `rep movsb` slows down sharply when the destination sits a few bytes past
//! the source modulo 4 KiB. rustls hits exactly that case on every response: it copies each
//! 16 KiB of plaintext to 5 bytes into a fresh record buffer, from hyper's page-aligned read
//! buffer, so on such a processor the copies would take a large share of the sidecar's CPU on
//! every page (`benches/instr_bench.py` measures it).
//!
//! glibc reads its tunables only when a program starts, so the process starts itself again,
//! once, with `glibc.cpu.x86_rep_movsb_threshold` raised above any copy's size (the vector loop
//! then handles every size `rep movsb` did). The process keeps its id, arguments and
//! descriptors. Nothing happens on other processors, other C libraries, or when the operator's
//! `GLIBC_TUNABLES` already sets that threshold (their choice stands, including glibc's default).
//!
//! `TCCC_SIDECAR_COPY_TUNED` marks the second start, so that there is never a third: glibc
//! rewrites `GLIBC_TUNABLES` while it starts (it cuts the variable after the first tunable in
//! the process's original environment), so the variable alone is no proof.

/// The tunable, set above any copy's size.
const TUNABLE: &str = "glibc.cpu.x86_rep_movsb_threshold";
const VALUE: &str = "4294967295";
const ENV: &str = "GLIBC_TUNABLES";
/// Set on the second start.
pub const MARKER: &str = "TCCC_SIDECAR_COPY_TUNED";

/// The `GLIBC_TUNABLES` value to start again with, or `None` when it already names the
/// threshold. Other tunables the operator set are kept, after ours.
pub fn tuned_value(current: Option<&str>) -> Option<String> {
    match current.map(str::trim).filter(|c| !c.is_empty()) {
        None => Some(format!("{TUNABLE}={VALUE}")),
        Some(c) if c.split(':').any(|t| t.split('=').next() == Some(TUNABLE)) => None,
        Some(c) => Some(format!("{TUNABLE}={VALUE}:{c}")),
    }
}

/// Whether `cpuinfo` (the text of `/proc/cpuinfo`) describes an AMD processor.
pub fn is_amd(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("vendor_id"))
        .and_then(|l| l.split(':').nth(1))
        .is_some_and(|v| v.trim() == "AuthenticAMD")
}

/// Starts this program again with the tuned copy threshold when that helps; returns only when
/// it does not (or the new start failed, in which case the program simply runs untuned).
/// Call first thing in `main`, before any thread exists.
pub fn apply() {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os(MARKER).is_some() {
            return;
        }
        let current = std::env::var(ENV).ok();
        let Some(value) = tuned_value(current.as_deref()) else {
            return;
        };
        if !std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| is_amd(&c)) {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        // Returns only on failure (the binary was replaced or removed): run as we are.
        let _ = std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env(ENV, value)
            .env(MARKER, "1")
            .exec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_added_to_nothing_or_to_what_the_operator_set() {
        assert_eq!(
            tuned_value(None).as_deref(),
            Some("glibc.cpu.x86_rep_movsb_threshold=4294967295")
        );
        assert_eq!(
            tuned_value(Some("  ")).as_deref(),
            Some("glibc.cpu.x86_rep_movsb_threshold=4294967295")
        );
        assert_eq!(
            tuned_value(Some("glibc.malloc.arena_max=2")).as_deref(),
            Some("glibc.cpu.x86_rep_movsb_threshold=4294967295:glibc.malloc.arena_max=2")
        );
    }

    #[test]
    fn an_operator_threshold_is_left_alone() {
        assert_eq!(
            tuned_value(Some("glibc.cpu.x86_rep_movsb_threshold=2048")),
            None
        );
        assert_eq!(
            tuned_value(Some(
                "glibc.malloc.arena_max=2:glibc.cpu.x86_rep_movsb_threshold=8192"
            )),
            None
        );
        // A similar name is not the same tunable.
        assert!(tuned_value(Some("glibc.cpu.x86_rep_movsb_threshold_x=1")).is_some());
    }

    #[test]
    fn only_amd_vendors_count() {
        let amd = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n";
        let intel = "processor\t: 0\nvendor_id\t: GenuineIntel\n";
        assert!(is_amd(amd));
        assert!(!is_amd(intel));
        assert!(!is_amd(""));
        assert!(!is_amd("vendor_id"));
    }
}
