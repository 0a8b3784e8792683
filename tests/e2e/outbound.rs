//! Outbound HTTP: the allow-list, restricted addresses, redirects and
//! in-process services.

use crate::support::{Host, Upstream, get_json, probe_manifest};

fn fetch_url(host: &Host, target: &str) -> String {
    host.url(&format!("/probe/fetch?url={target}"))
}

#[tokio::test]
async fn no_allowed_hosts_means_no_network() {
    let upstream = Upstream::start();
    let host = Host::start(&probe_manifest("", ""));
    let (status, body) = get_json(&fetch_url(&host, &upstream.url("/ok"))).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Denied"), "{body}");
    assert!(
        upstream.hits.lock().unwrap().is_empty(),
        "the upstream must not be contacted"
    );
    assert!(
        host.wait_for_log("outbound request denied")
            .contains("outbound request denied")
    );
}

#[tokio::test]
async fn exactly_named_loopback_host_is_allowed() {
    let upstream = Upstream::start();
    let settings = format!(
        "allowed_outbound_hosts = [\"http://127.0.0.1:{}\"]",
        upstream.addr.port()
    );
    let host = Host::start(&probe_manifest(&settings, ""));
    let (status, body) = get_json(&fetch_url(&host, &upstream.url("/ok"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 200);
    assert_eq!(body["body"], "upstream ok");
    assert_eq!(upstream.hits.lock().unwrap().as_slice(), ["/ok"]);
}

#[tokio::test]
async fn wildcard_does_not_reach_restricted_addresses() {
    let upstream = Upstream::start();
    let host = Host::start(&probe_manifest(
        "allowed_outbound_hosts = [\"*://*:*\"]",
        "",
    ));
    // Only loopback targets here: if the check failed, a request to a
    // private or metadata address would leave this machine. Those ranges
    // are covered by the unit tests of the address classifier.
    for target in [
        upstream.url("/ok"),
        format!("http://localhost:{}/ok", upstream.addr.port()),
        format!("http://[::ffff:127.0.0.1]:{}/ok", upstream.addr.port()),
        format!("http://127.1.2.3:{}/ok", upstream.addr.port()),
        format!("http://2130706433:{}/ok", upstream.addr.port()),
    ] {
        let (status, body) = get_json(&fetch_url(&host, &target)).await;
        assert_eq!(status, 502, "{target}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("Prohibited"),
            "{target}: {body}"
        );
    }
    assert!(upstream.hits.lock().unwrap().is_empty());
    assert!(
        host.wait_for_log("restricted address refused")
            .contains("restricted address refused")
    );
}

#[tokio::test]
async fn port_outside_entry_is_denied() {
    let upstream = Upstream::start();
    let host = Host::start(&probe_manifest(
        "allowed_outbound_hosts = [\"http://127.0.0.1:1\"]",
        "",
    ));
    let (status, body) = get_json(&fetch_url(&host, &upstream.url("/ok"))).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Denied"), "{body}");
}

#[tokio::test]
async fn redirect_to_unlisted_host_is_denied() {
    let first = Upstream::start();
    let second = Upstream::start();
    let settings = format!(
        "allowed_outbound_hosts = [\"http://127.0.0.1:{}\"]",
        first.addr.port()
    );
    let host = Host::start(&probe_manifest(&settings, ""));
    let target = first.url(&format!("/redirect?to={}", second.url("/ok")));
    let (status, body) = get_json(&fetch_url(&host, &format!("{target}&follow=1"))).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["redirected_from"], target);
    assert!(body["error"].as_str().unwrap().contains("Denied"), "{body}");
    assert_eq!(first.hits.lock().unwrap().len(), 1);
    assert!(second.hits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn redirect_to_restricted_address_via_wildcard_is_refused() {
    let first = Upstream::start();
    let second = Upstream::start();
    let settings = format!(
        "allowed_outbound_hosts = [\"http://127.0.0.1:{}\", \"http://*:{}\"]",
        first.addr.port(),
        second.addr.port()
    );
    let host = Host::start(&probe_manifest(&settings, ""));
    let target = first.url(&format!("/redirect?to={}", second.url("/ok")));
    let (status, body) = get_json(&fetch_url(&host, &format!("{target}&follow=1"))).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("Prohibited"),
        "{body}"
    );
    assert!(second.hits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn internal_service_is_dispatched_in_process() {
    let host = Host::start(&probe_manifest(
        "allowed_outbound_hosts = [\"http://*.copycar.internal\"]",
        "",
    ));
    let (status, body) = get_json(&fetch_url(&host, "http://host.copycar.internal/info")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 200);
    let info: serde_json::Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
    assert_eq!(info["app"], "probe-app");
    assert_eq!(info["caller"], "probe");
    assert!(info["request_id"].is_string());

    let (status, body) = get_json(&fetch_url(&host, "http://nosuch.copycar.internal/x")).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("DestinationNotFound"),
        "{body}"
    );
}

#[tokio::test]
async fn internal_service_needs_a_grant() {
    let host = Host::start(&probe_manifest("", ""));
    let (status, body) = get_json(&fetch_url(&host, "http://host.copycar.internal/info")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Denied"), "{body}");
}

#[tokio::test]
async fn catch_all_does_not_grant_in_process_hosts() {
    let manifest = probe_manifest("allowed_outbound_hosts = [\"*://*:*\"]", "");
    let host = Host::start(&manifest);
    for target in [
        "http://host.copycar.internal/info",
        "http://probe.spin.internal/headers",
        "http://self/probe/headers",
        "/probe/headers",
    ] {
        let (status, body) = get_json(&fetch_url(&host, target)).await;
        assert_eq!(status, 502, "{target}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("Denied"),
            "{target}: {body}"
        );
    }
}

#[tokio::test]
async fn in_process_hosts_need_plain_http() {
    let host = Host::start(&probe_manifest(
        "allowed_outbound_hosts = [\"http://self\", \"http://*.copycar.internal\"]",
        "",
    ));
    for target in [
        "https://self/probe/echo",
        "http://self:9999/probe/echo",
        "https://host.copycar.internal/info",
    ] {
        let (status, body) = get_json(&fetch_url(&host, target)).await;
        assert_eq!(status, 502, "{target}: {body}");
    }
    // A URL without a host goes to the app's own routes.
    let (status, body) = get_json(&fetch_url(&host, "/probe/echo")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], 200, "{body}");
}
