//! The `tccc-sidecar` binary: a thin shell over the library.

/// mimalloc instead of glibc's allocator: per-thread heaps suit the thread-per-core workers,
/// and it keeps freed memory for reuse, where glibc hands every block over 128 KiB (a
/// compressor's window, a large buffer) back to the kernel and pays page faults to get it
/// again on the next response. Built without transparent huge pages (`no_thp`): with them,
/// one live block could keep a whole 2 MiB page resident, which makes each idle connection
/// cost markedly more memory (`benches/idle_conns.py` measures it).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tccc_sidecar::runtime::copy_tuning::apply();
    tccc_sidecar::cmd::main()
}
