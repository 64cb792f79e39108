//! The `tccc-sidecar` binary: a thin shell over the library.

// A proxy allocates and frees many small buffers per request (header maps, body chunks,
// futures) across threads; mimalloc's per-thread free lists cost far less than glibc
// malloc here (measured with benches/proxy_bench.py).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tccc_sidecar::cli::main()
}
