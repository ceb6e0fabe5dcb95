//! A coordinator killed and started again under a Ready session with a device rendering on it:
//! how long until the session's render host has linked again, how long the coordinator takes to
//! listen again, and whether the device ever went without frames. The real `parallax` binary,
//! local render host processes, a native headset on the render connection.
//!
//!     NODEVICE_SELECT=1 cargo bench -p parallax-server --bench restart [-- ROUNDS]

use std::time::{Duration, Instant};

#[path = "../tests/support/coordinator.rs"]
mod coordinator;
use coordinator::*;

#[tokio::main]
async fn main() {
    use reqwest::Method;

    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (account, key) = create_account(&data);
    let mut args = with_hosts(data.to_str().unwrap(), 1, 0);
    let (mut child, addr) = serve(&as_strs(&args), &[]);
    *args.last_mut().unwrap() = addr.clone();
    wait_for_standby(&addr).await;
    let token = token(&addr, &account, &key).await;
    let session = format!("http://{addr}/accounts/{account}/sessions/live?api-version=2021-01-01");
    let body = serde_json::json!({"maxLeaseTimeMinutes": 600, "size": "Standard"});
    let (status, live) = call(Method::PUT, session.clone(), &token, Some(body)).await;
    assert_eq!((status, live["status"].as_str()), (201, Some("Ready")));
    let url = live["renderUrl"].as_str().unwrap().to_string();
    let mut headset = parallax_headset::RenderConnection::connect(&url)
        .await
        .unwrap();
    headset.load("gear").await.unwrap();
    frame_after_pose(&mut headset, 1.0).await;
    let host_pid = host_with_device(&addr).await;

    let (mut listening, mut linked, mut outage_frames) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        child.kill().unwrap();
        child.wait().unwrap();
        let killed = Instant::now();
        // While no coordinator runs: a pose, and the time to its frame.
        let asked = Instant::now();
        frame_after_pose(&mut headset, 1.0 + round as f32 * 0.01).await;
        outage_frames.push(asked.elapsed());
        let (restarted, _) = serve(&as_strs(&args), &[]);
        child = restarted;
        listening.push(killed.elapsed());
        while !host_linked(&addr, host_pid).await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        linked.push(killed.elapsed());
        let (_, live) = call(Method::GET, session.clone(), &token, None).await;
        assert_eq!(live["status"], "Ready", "round {round}: {live}");
    }
    frame_after_pose(&mut headset, 3.0).await;
    assert!(stop(child).success());

    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let report = |name: &str, samples: &mut Vec<Duration>| {
        samples.sort();
        let at = |q: f64| ms(&samples[((samples.len() - 1) as f64 * q).round() as usize]);
        println!(
            "{name:<48} p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms",
            at(0.5),
            at(0.99),
            ms(samples.last().unwrap())
        );
    };
    println!(
        "{rounds} kills (SIGKILL) of a coordinator with one Ready session and a device on it:"
    );
    report("kill → the restarted coordinator listens", &mut listening);
    report("kill → the session's host has linked again", &mut linked);
    report("pose → frame while no coordinator runs", &mut outage_frames);
    println!("the session was Ready after every restart; the device's connection never closed");
}
