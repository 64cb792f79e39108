//! The seats file at run time: rewritten (in place and by rename) while token requests run,
//! broken (the last good mapping stays, `/metrics` shows it), and swapped the way Kubernetes
//! updates a mounted ConfigMap (a `..data` symlink).

use crate::common::*;
use crate::login_common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Logs alice in until her token is issued for `seat`; panics after [`WAIT`].
async fn until_alice_maps_to(env: &Env, c: &mut Client, seat: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let before = env.issued(seat);
        let (s, _, v) = login(c, &[("x-remote-user", "alice")]).await;
        assert_token(s, &v);
        if env.issued(seat) > before {
            return;
        }
        assert!(Instant::now() < deadline, "alice never mapped to {seat}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_seats_file_rewritten_while_requests_run_never_drops_a_request() {
    let env = Env::start(Opts::default()).await;
    let path = env.dir.path("seats.toml");
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let (addr, ca, stop) = (env.side.addr, env.side.ca_pem.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, &ca, Proto::H2, None).await;
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let (s, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
                assert_token(s, &v);
                n += 1;
            }
            n
        }));
    }
    let to_bob = "alice = \"agent-bob@example.com\"\n# padding to make the write take more than one syscall\n";
    let to_alice = "alice = \"agent-alice@example.com\"\n";
    for round in 0..6 {
        let text = if round % 2 == 0 { to_bob } else { to_alice };
        if round % 3 == 0 {
            // In place: truncate, then write in two pieces.
            use std::io::Write;
            let mut f = std::fs::File::create(&path).unwrap();
            let (a, b) = text.split_at(text.len() / 2);
            f.write_all(a.as_bytes()).unwrap();
            f.flush().unwrap();
            f.write_all(b.as_bytes()).unwrap();
        } else {
            let tmp = env.dir.path("seats.toml.tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        total += within("worker", w).await.unwrap();
    }
    assert!(total > 10, "requests ran during the rewrites ({total})");
    assert_eq!(
        env.issued(ALICE_SEAT) + env.issued(BOB_SEAT),
        u64::from(total),
        "every answer was a token for one of the two seats"
    );
    assert!(
        env.issued(BOB_SEAT) > 0,
        "the rewrites took effect while requests ran"
    );
    // The last write (round 5) mapped alice back to her own seat.
    let mut c = env.side.h1().await;
    until_alice_maps_to(&env, &mut c, ALICE_SEAT).await;
    let m = env.side.metrics();
    assert!(metric(&m, "tccc_sidecar_seats_reloads_total{result=\"ok\"}") >= 2.0);
    assert_eq!(
        metric(&m, "tccc_sidecar_seats_reloads_total{result=\"error\"}"),
        0.0
    );
}

#[tokio::test]
async fn a_broken_seats_file_keeps_the_last_good_mapping_and_shows_in_metrics() {
    let env = Env::start(Opts::default()).await;
    let path = env.dir.path("seats.toml");
    let mut c = env.side.h1().await;
    std::fs::write(&path, "alice = \"agent-bob@example.com\"\nbob = [oops\n").unwrap();
    let deadline = Instant::now() + WAIT;
    while metric(&env.side.metrics(), "tccc_sidecar_seats_file_valid") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "the broken file was never noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = env.side.metrics();
    assert_eq!(
        metric(&m, "tccc_sidecar_seats_reloads_total{result=\"error\"}"),
        1.0
    );
    assert_eq!(metric(&m, "tccc_sidecar_seats_entries"), 3.0);
    let (s, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
    assert_token(s, &v);
    let (s, _, v) = login(&mut c, &[("x-remote-user", "bob")]).await;
    assert_token(s, &v);
    assert_eq!(env.issued(ALICE_SEAT), 1, "the old mapping still holds");
    std::fs::write(&path, "alice = \"agent-bob@example.com\"\n").unwrap();
    until_alice_maps_to(&env, &mut c, BOB_SEAT).await;
    assert_eq!(
        metric(&env.side.metrics(), "tccc_sidecar_seats_file_valid"),
        1.0
    );
    let (s, _, v) = login(&mut c, &[("x-remote-user", "bob")]).await;
    assert_error(s, &v, 403, "no_seat");
}

#[tokio::test]
async fn a_kubernetes_configmap_swap_is_picked_up() {
    let mount = TempDir::new("cm");
    let v1 = mount.path("..2026_11_25_v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(
        v1.join("seats.toml"),
        "alice = \"agent-alice@example.com\"\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_25_v1", mount.path("..data")).unwrap();
    std::os::unix::fs::symlink("..data/seats.toml", mount.path("seats.toml")).unwrap();
    let seats_file = mount.path("seats.toml");
    let (em_addr, em) = start_emulator_api(em_config()).await;
    let dir = TempDir::new("cm-creds");
    std::fs::write(dir.path("sid"), "AKIDlogin").unwrap();
    std::fs::write(dir.path("skey"), "login-secret-key").unwrap();
    let crm = Upstream::ok("crm").await;
    let extra = format!(
        "\n[tccc]\nsdk_app_id = {APP}\nendpoint = \"http://{em_addr}\"\nsecret_id_file = \"{}\"\nsecret_key_file = \"{}\"\n\n[identity]\nmode = \"header\"\ntrusted_peers = [\"127.0.0.1\"]\n\n[seats]\nfile = \"{}\"\n",
        dir.path("sid").display(),
        dir.path("skey").display(),
        seats_file.display()
    );
    let side = Sidecar::start(&crm.url(), "", &extra).await;
    let mut c = side.h1().await;
    let issued = |seat: &str| {
        let v: serde_json::Value = serde_json::from_str(&em.stats_json()).unwrap();
        v["seats"][seat]["tokens_issued"].as_u64().unwrap_or(0)
    };
    let (s, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
    assert_token(s, &v);
    assert_eq!(issued(ALICE_SEAT), 1);
    // kubelet's update: a new timestamped folder, a new ..data link renamed over the old one.
    let v2 = mount.path("..2026_11_25_v2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(v2.join("seats.toml"), "alice = \"agent-bob@example.com\"\n").unwrap();
    std::os::unix::fs::symlink("..2026_11_25_v2", mount.path("..data_tmp")).unwrap();
    std::fs::rename(mount.path("..data_tmp"), mount.path("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (s, _, v) = login(&mut c, &[("x-remote-user", "alice")]).await;
        assert_token(s, &v);
        if issued(BOB_SEAT) == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ..data swap was never picked up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
