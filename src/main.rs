//! The `tccc-sidecar` binary: a thin shell over the library.

fn main() -> std::process::ExitCode {
    tccc_sidecar::cli::main()
}
