//! `tccc-sidecar dev`: HTTPS and the workbench in front of a local app, for a developer on
//! their own machine. It keeps a development CA in the user's data directory (made once,
//! name-constrained to `localhost`, `127.0.0.1` and `::1`, key 0600), serves on a loopback
//! address only, logs every local request in as one seat (`identity.mode = "static"`), and
//! with `--emulator` runs the CCC emulator in the same process so no Tencent account is needed.

use crate::config::Config;
use crate::state::AppState;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::net::TcpListener;

#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// The app to put behind HTTPS, such as http://127.0.0.1:3000.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// The seat (SeatUserId) that every request from this machine logs in as.
    #[arg(long, value_name = "SEAT")]
    pub seat: String,
    /// A loopback address: dev serves this machine only.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Run the CCC emulator in this process (no Tencent account needed).
    #[arg(long)]
    pub emulator: bool,
    /// Without --emulator: the SdkAppId. Credentials come from TENCENTCLOUD_SECRET_ID and
    /// TENCENTCLOUD_SECRET_KEY.
    #[arg(long, value_name = "N", env = "TCCC_SDK_APP_ID")]
    pub sdk_app_id: Option<u64>,
    /// Without --emulator: the CCC API endpoint.
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://ccc.tencentcloudapi.com"
    )]
    pub endpoint: String,
    /// Where the development CA is kept (default: the user's data directory).
    #[arg(long, value_name = "DIR", env = "TCCC_SIDECAR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The names the development CA may sign for, and its leaf names.
pub const LOCAL_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// `$TCCC_SIDECAR_DATA_DIR`, else the platform's per-user data directory (Linux:
/// `$XDG_DATA_HOME` or `~/.local/share`; macOS: `~/Library/Application Support`), plus
/// `tccc-sidecar/dev-ca`.
fn ca_dir(args: &DevArgs) -> Result<PathBuf, String> {
    match &args.data_dir {
        Some(d) => Ok(d.join("dev-ca")),
        None => dirs::data_dir()
            .map(|d| d.join("tccc-sidecar").join("dev-ca"))
            .ok_or_else(|| {
                "no per-user data directory (HOME is not set); pass --data-dir DIR".to_string()
            }),
    }
}

/// How to make browsers on each platform trust the development CA.
pub fn trust_instructions(ca: &std::path::Path) -> String {
    let ca = ca.display();
    format!(
        "  Trust it once (it can sign only for localhost, 127.0.0.1 and ::1):\n\
         \x20   Debian/Ubuntu  sudo cp '{ca}' /usr/local/share/ca-certificates/tccc-sidecar-dev.crt && sudo update-ca-certificates\n\
         \x20   Fedora/RHEL    sudo cp '{ca}' /etc/pki/ca-trust/source/anchors/tccc-sidecar-dev.crt && sudo update-ca-trust\n\
         \x20   Chrome/Firefox on Linux (NSS)  certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n tccc-sidecar-dev -i '{ca}'\n\
         \x20   macOS          sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain '{ca}'\n\
         \x20   Windows        certutil -user -addstore Root ca.crt   (after copying the file over)\n"
    )
}

/// The configuration `dev` runs with, built as a TOML table so that no argument can inject a
/// key of its own.
fn config_for(
    args: &DevArgs,
    ca: &crate::listener::tls::devcert::LocalCa,
    ccc: &Ccc,
) -> Result<Config, String> {
    use toml::{Table, Value};
    let s = |v: &str| Value::String(v.to_string());
    let path = |p: &std::path::Path| Value::String(p.display().to_string());
    let mut server = Table::new();
    server.insert("listen".into(), s(&args.listen.to_string()));
    server.insert("tls_cert".into(), path(&ca.leaf_cert));
    server.insert("tls_key".into(), path(&ca.leaf_key));
    let mut upstream = Table::new();
    upstream.insert("url".into(), s(&args.upstream));
    let mut tccc = Table::new();
    tccc.insert("sdk_app_id".into(), Value::Integer(ccc.sdk_app_id as i64));
    tccc.insert("endpoint".into(), s(&ccc.endpoint));
    if let Some(dir) = &ccc.credentials_dir {
        tccc.insert("secret_id_file".into(), path(&dir.join("secret-id")));
        tccc.insert("secret_key_file".into(), path(&dir.join("secret-key")));
        // The emulator's SdkURLs name `localhost` (what the certificate and browsers use).
        tccc.insert("sdk_url_hosts".into(), Value::Array(vec![s("localhost")]));
    }
    let mut identity = Table::new();
    identity.insert("mode".into(), s("static"));
    identity.insert("seat".into(), s(&args.seat));
    let mut root = Table::new();
    if ccc.credentials_dir.is_some() {
        // With the emulator, the diagnostics page probes its SDK origin only, not Tencent's.
        let mut inject = Table::new();
        inject.insert("diag_hosts".into(), Value::Array(Vec::new()));
        root.insert("inject".into(), Value::Table(inject));
    }
    root.insert("server".into(), Value::Table(server));
    root.insert("upstream".into(), Value::Table(upstream));
    root.insert("tccc".into(), Value::Table(tccc));
    root.insert("identity".into(), Value::Table(identity));
    let text = toml::to_string(&root).map_err(|e| e.to_string())?;
    Config::parse(&text, std::path::Path::new("<dev>")).map_err(|e| {
        // Name the flag rather than the generated key.
        let e = e.to_string();
        e.replace("<dev>:", "")
            .replace("upstream.url", "--upstream")
            .replace("identity.seat", "--seat")
            .replace("server.listen", "--listen")
            .replace("tccc.sdk_app_id", "--sdk-app-id")
            .replace("tccc.endpoint", "--endpoint")
            .trim()
            .to_string()
    })
}

/// Where tokens come from.
struct Ccc {
    sdk_app_id: u64,
    endpoint: String,
    /// Files holding the in-process emulator's credentials; `None`: the environment's.
    credentials_dir: Option<PathBuf>,
}

/// Runs the dev server until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> Result<(), String> {
    if !args.listen.ip().is_loopback() {
        return Err(format!(
            "--listen: {} is not a loopback address; dev serves this machine only (use 127.0.0.1 or [::1]; for other machines use `run` with a real identity mode)",
            args.listen
        ));
    }
    if args.seat.trim().is_empty() {
        return Err("--seat: must not be empty".into());
    }
    let dir = ca_dir(&args)?;
    let hosts: Vec<String> = LOCAL_HOSTS.iter().map(|h| h.to_string()).collect();
    let ca = crate::listener::tls::devcert::ensure_local_ca(&dir, &hosts)?;
    // Credentials the in-process emulator checks signatures with live in a folder of this run.
    let run_dir = std::env::temp_dir().join(format!("tccc-sidecar-dev-{}", std::process::id()));
    let (ccc, emulator_note) = if args.emulator {
        start_emulator(&args, &ca, &run_dir).await?
    } else {
        let Some(sdk_app_id) = args.sdk_app_id else {
            return Err(
                "--sdk-app-id (or TCCC_SDK_APP_ID) is required without --emulator; add --emulator to try it with no Tencent account"
                    .into(),
            );
        };
        (
            Ccc {
                sdk_app_id,
                endpoint: args.endpoint.clone(),
                credentials_dir: None,
            },
            None,
        )
    };
    let result = serve(&args, &ca, &ccc, emulator_note).await;
    let _ = std::fs::remove_dir_all(&run_dir);
    result
}

#[cfg(feature = "emulator")]
async fn start_emulator(
    args: &DevArgs,
    ca: &crate::listener::tls::devcert::LocalCa,
    run_dir: &std::path::Path,
) -> Result<(Ccc, Option<String>), String> {
    const SDK_APP_ID: u64 = 1400000000;
    const SECRET_ID: &str = "AKIDdev";
    let secret_key = hex::encode(rand::random::<[u8; 16]>());
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(run_dir)
            .map_err(|e| format!("{}: cannot create: {e}", run_dir.display()))?;
    }
    crate::listener::tls::devcert::write_private(
        &run_dir.join("secret-key"),
        secret_key.as_bytes(),
    )?;
    crate::listener::tls::devcert::write_private(&run_dir.join("secret-id"), SECRET_ID.as_bytes())?;
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))
    };
    let (cert, key) = (read(&ca.leaf_cert)?, read(&ca.leaf_key)?);
    let running = crate::emulator::inprocess::start(
        crate::emulator::inprocess::InProcess {
            sdk_app_id: SDK_APP_ID,
            secret_id: SECRET_ID,
            secret_key: &secret_key,
            seats: vec![args.seat.clone()],
            tls_cert_pem: &cert,
            tls_key_pem: &key,
            sdk_host: "localhost",
        },
        std::net::IpAddr::from([127, 0, 0, 1]),
    )
    .await?;
    let note = format!(
        "  CCC emulator in this process: API http://{}, seat {} (no Tencent account involved)",
        running.api, args.seat
    );
    Ok((
        Ccc {
            sdk_app_id: SDK_APP_ID,
            endpoint: format!("http://{}", running.api),
            credentials_dir: Some(run_dir.to_path_buf()),
        },
        Some(note),
    ))
}

#[cfg(not(feature = "emulator"))]
async fn start_emulator(
    _args: &DevArgs,
    _ca: &crate::listener::tls::devcert::LocalCa,
    _run_dir: &std::path::Path,
) -> Result<(Ccc, Option<String>), String> {
    Err(
        "--emulator: this build has no emulator (it was built without the `emulator` feature)"
            .into(),
    )
}

async fn serve(
    args: &DevArgs,
    ca: &crate::listener::tls::devcert::LocalCa,
    ccc: &Ccc,
    emulator_note: Option<String>,
) -> Result<(), String> {
    let config = config_for(args, ca, ccc)?;
    for n in crate::cmd::check::preflight(&config).map_err(|e| e.to_string())? {
        eprintln!("tccc-sidecar: {n}");
    }
    let state = AppState::new(config).map_err(|e| e.to_string())?;
    state.start_background();
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("--listen: cannot listen on {}: {e}", args.listen))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let host = if bound.is_ipv6() {
        "[::1]"
    } else {
        "localhost"
    };
    println!("tccc-sidecar dev is running.");
    println!();
    println!("  Open   https://{host}:{}/", bound.port());
    println!(
        "  It forwards to {} and logs every request from this machine in as seat {}.",
        args.upstream, args.seat
    );
    if let Some(n) = emulator_note {
        println!("{n}");
    }
    println!(
        "  Diagnostics for this browser: https://{host}:{}/__tccc/diag",
        bound.port()
    );
    println!();
    if ca.created {
        println!("  A development CA was made for this machine:");
    } else {
        println!("  The development CA of this machine (made earlier, reused):");
    }
    println!("  {}", ca.ca_cert.display());
    print!("{}", trust_instructions(&ca.ca_cert));
    println!("  Ctrl-C stops it.");
    crate::listener::server::serve(listener, state, crate::runtime::interrupted())
        .await
        .map_err(|e| e.to_string())
}
