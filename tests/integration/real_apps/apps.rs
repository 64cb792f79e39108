//! Real third-party applications, started on loopback from the virtualenv that
//! `scripts/real-apps.sh` installs (the test command runs it): Trac 1.6 under Apache with
//! mod_wsgi and HTTP Basic on every page (how many private Tracs and legacy OA systems are
//! set up), Trac under its own `tracd` (Basic on `/login` only, then its `trac_auth` cookie:
//! Trac's stock set-up), and Django 5.2's admin under `runserver`. Each app is its stock
//! install: no plugin, no view, no template change; users and data are made with the apps'
//! own tools. Every process runs in a group of its own and is stopped with it.

use crate::common::TempDir;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The virtualenv with Trac and Django, built for Debian's Python (mod_wsgi's).
pub fn venv() -> PathBuf {
    let v = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/real-apps-venv");
    assert!(
        v.join(".installed").exists(),
        "{} is missing: run scripts/real-apps.sh (the test command does)",
        v.display()
    );
    v
}

fn bin(name: &str) -> PathBuf {
    venv().join("bin").join(name)
}

/// Runs a set-up command to completion; its output is shown when it fails.
fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One running application.
pub struct App {
    pub url: String,
    pub dir: TempDir,
    _proc: Proc,
    log: PathBuf,
}

impl App {
    /// What the app wrote to its log so far (Apache's access log names the user it saw).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once `done` holds for it (a server writes its access line after the answer
    /// has gone), or as it is after 5 s.
    pub async fn log_when(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            if done(&log) || Instant::now() > deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A process group, stopped (TERM, then KILL for what is left) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let group = -(self.0.id() as i32);
        // SAFETY: signals this app's own process group (it was started as its leader).
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (mod_wsgi's daemon, a slow child) goes now.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// Starts the command `make` builds for a port and waits until `path` answers a status
/// `ready` accepts; a process that exits at once (its port taken meanwhile) gets another try.
async fn start(
    dir: TempDir,
    log: PathBuf,
    path: &str,
    ready: fn(u16) -> bool,
    mut make: impl FnMut(u16) -> Command,
) -> App {
    for _ in 0..3 {
        let port = free_port();
        let mut cmd = make(port);
        use std::os::unix::process::CommandExt;
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(open_append(&dir.path("stdout.log"))))
            .stderr(Stdio::from(open_append(&dir.path("stderr.log"))));
        let mut proc = Proc(cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}")));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut exited = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = proc.0.try_wait() {
                exited = true;
                break;
            }
            if status_of(&format!("{url}{path}")).await.is_some_and(ready) {
                return App {
                    url,
                    dir,
                    _proc: proc,
                    log,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(proc);
        if !exited {
            break;
        }
    }
    panic!(
        "the application did not start:\n{}\n{}",
        std::fs::read_to_string(dir.path("stderr.log")).unwrap_or_default(),
        std::fs::read_to_string(dir.path("error.log")).unwrap_or_default()
    );
}

fn open_append(p: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap()
}

/// A plain HTTP client that shows redirects instead of following them, as the tests need
/// to see each answer (a sign-in's cookie comes on its redirect).
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The status of a plain GET, or `None` while nothing answers.
pub async fn status_of(url: &str) -> Option<u16> {
    let resp = no_redirects().get(url).send().await.ok()?;
    Some(resp.status().as_u16())
}

/// An Apache password file with SHA-1 entries (`{SHA}`, which mod_authn_file reads).
fn htpasswd(path: &Path, users: &[(&str, &str)]) {
    use base64::Engine;
    use sha1::Digest;
    let text: String = users
        .iter()
        .map(|(u, p)| {
            let digest = sha1::Sha1::digest(p.as_bytes());
            format!(
                "{u}:{{SHA}}{}\n",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

/// What a Trac environment holds besides its defaults.
pub struct TracData<'a> {
    /// Full names users gave themselves in Preferences (Trac shows them in its menu).
    pub full_names: &'a [(&'a str, &'a str)],
    /// Tickets: reporter, summary, description (wiki text).
    pub tickets: &'a [(&'a str, &'a str, &'a str)],
}

/// A Trac environment made with `trac-admin` and Trac's own Python API.
fn trac_env(dir: &TempDir, data: &TracData<'_>) -> PathBuf {
    let env = dir.path("env");
    run(Command::new(bin("trac-admin")).arg(&env).args([
        "initenv",
        "Sidecar test",
        "sqlite:db/trac.db",
    ]));
    let script = format!(
        "import sys\nfrom trac.env import Environment\nfrom trac.ticket.model import Ticket\n\
         env = Environment(sys.argv[1])\n\
         for user, name in {names}:\n    \
             env.db_transaction(\"INSERT INTO session (sid, authenticated, last_visit) VALUES (%s, 1, 0)\", (user,))\n    \
             env.db_transaction(\"INSERT INTO session_attribute (sid, authenticated, name, value) VALUES (%s, 1, 'name', %s)\", (user, name))\n\
         for reporter, summary, description in {tickets}:\n    \
             t = Ticket(env)\n    t['reporter'] = reporter\n    t['summary'] = summary\n    \
             t['description'] = description\n    t['status'] = 'new'\n    t.insert()\n",
        names = py_list(data.full_names.iter().map(|(a, b)| vec![*a, *b])),
        tickets = py_list(data.tickets.iter().map(|(a, b, c)| vec![*a, *b, *c])),
    );
    run(Command::new(bin("python")).args(["-c", &script]).arg(&env));
    env
}

fn py_list<'a>(rows: impl Iterator<Item = Vec<&'a str>>) -> String {
    let rows: Vec<String> = rows
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .map(|c| serde_json::to_string(c).unwrap())
                .collect();
            format!("({},)", cells.join(", "))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// Apache (run as root, it serves as www-data): the folder must be theirs to write.
fn hand_to_apache(dir: &Path) {
    // SAFETY: geteuid only reads the process's credentials.
    if unsafe { libc::geteuid() } == 0 {
        run(Command::new("chown")
            .args(["-R", "www-data:www-data"])
            .arg(dir));
    }
    run(Command::new("chmod").args(["-R", "a+rX"]).arg(dir));
}

/// Trac under Apache with mod_wsgi, HTTP Basic required on every page.
pub async fn trac_behind_basic_auth(users: &[(&str, &str)], data: &TracData<'_>) -> App {
    let dir = TempDir::new("trac-apache");
    let env = trac_env(&dir, data);
    run(Command::new(bin("trac-admin"))
        .arg(&env)
        .arg("deploy")
        .arg(dir.path("deploy")));
    htpasswd(&dir.path("htpasswd"), users);
    hand_to_apache(&dir.0);
    let root = dir.0.clone();
    let venv = venv();
    let log = dir.path("access.log");
    start(dir, log, "/", |s| s == 401, move |port| {
        let m = "/usr/lib/apache2/modules";
        let user = if unsafe { libc::geteuid() } == 0 {
            "User www-data\nGroup www-data\n"
        } else {
            ""
        };
        let conf = format!(
            "ServerRoot {r}\nListen 127.0.0.1:{port}\nPidFile {r}/httpd.pid\nErrorLog {r}/error.log\n\
             LogLevel warn\nServerName 127.0.0.1\n{user}\
             LoadModule mpm_event_module {m}/mod_mpm_event.so\n\
             LoadModule authz_core_module {m}/mod_authz_core.so\n\
             LoadModule authz_user_module {m}/mod_authz_user.so\n\
             LoadModule authn_core_module {m}/mod_authn_core.so\n\
             LoadModule authn_file_module {m}/mod_authn_file.so\n\
             LoadModule auth_basic_module {m}/mod_auth_basic.so\n\
             LoadModule wsgi_module {m}/mod_wsgi.so\n\
             StartServers 1\nServerLimit 1\nThreadsPerChild 16\nMaxRequestWorkers 16\n\
             LogFormat \"%u %r %>s\" who\nCustomLog {r}/access.log who\n\
             WSGISocketPrefix {r}/wsgi\n\
             WSGIDaemonProcess trac python-home={v} processes=1 threads=4\n\
             WSGIScriptAlias / {r}/deploy/cgi-bin/trac.wsgi\n\
             WSGIProcessGroup trac\nWSGIApplicationGroup %{{GLOBAL}}\n\
             <Location />\n  AuthType Basic\n  AuthName \"Trac\"\n  AuthUserFile {r}/htpasswd\n  Require valid-user\n</Location>\n",
            r = root.display(),
            v = venv.display(),
        );
        let path = root.join(format!("httpd-{port}.conf"));
        std::fs::write(&path, conf).unwrap();
        let mut c = Command::new("/usr/sbin/apache2");
        c.arg("-f").arg(&path).arg("-DFOREGROUND");
        c
    })
    .await
}

/// Trac under `tracd`: Basic on `/login`, which sets the `trac_auth` cookie.
pub async fn trac_with_form_cookie(users: &[(&str, &str)], data: &TracData<'_>) -> App {
    let dir = TempDir::new("tracd");
    let env = trac_env(&dir, data);
    htpasswd(&dir.path("htpasswd"), users);
    let auth = format!("*,{},Trac", dir.path("htpasswd").display());
    let log = dir.path("stderr.log");
    start(
        dir,
        log,
        "/",
        |s| s == 200,
        move |port| {
            let mut c = Command::new(bin("tracd"));
            c.args(["-s", "-b", "127.0.0.1", "--port", &port.to_string()])
                .arg(format!("--basic-auth={auth}"))
                .arg(&env);
            c
        },
    )
    .await
}

/// A stock `django-admin startproject` with its admin, migrated, with staff users made by
/// `manage.py`; `first_names` are set as an administrator would in the admin; `settings` is
/// appended to the project's `settings.py` (what a guide tells an admin to add).
pub async fn django_admin(
    users: &[(&str, &str)],
    first_names: &[(&str, &str)],
    settings: &str,
) -> App {
    let dir = TempDir::new("django");
    let project = dir.path("crm");
    std::fs::create_dir_all(&project).unwrap();
    run(Command::new(bin("django-admin"))
        .args(["startproject", "crm"])
        .arg(&project));
    if !settings.is_empty() {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(project.join("crm/settings.py"))
            .unwrap();
        writeln!(f, "\n{settings}").unwrap();
    }
    let manage = project.join("manage.py");
    run(Command::new(bin("python"))
        .arg(&manage)
        .args(["migrate", "-v0"]));
    let mut script = String::from("from django.contrib.auth.models import User\n");
    for (u, p) in users {
        script.push_str(&format!(
            "User.objects.create_superuser({u}, '{u2}@example.com', {p})\n",
            u = serde_json::to_string(u).unwrap(),
            u2 = u,
            p = serde_json::to_string(p).unwrap()
        ));
    }
    for (u, name) in first_names {
        script.push_str(&format!(
            "User.objects.filter(username={}).update(first_name={})\n",
            serde_json::to_string(u).unwrap(),
            serde_json::to_string(name).unwrap()
        ));
    }
    manage_shell(&manage, &script);
    let log = dir.path("stderr.log");
    start(
        dir,
        log,
        "/admin/login/",
        |s| s == 200,
        move |port| {
            let mut c = Command::new(bin("python"));
            c.arg(&manage)
                .args(["runserver", "--noreload"])
                .arg(format!("127.0.0.1:{port}"));
            c
        },
    )
    .await
}

/// Runs Python with the project's Django settings (to add data as the admin would).
pub fn django_shell(app: &App, code: &str) {
    manage_shell(&app.dir.path("crm/manage.py"), code);
}

fn manage_shell(manage: &Path, code: &str) {
    run(Command::new(bin("python"))
        .arg(manage)
        .args(["shell", "-c", code]));
}
