//! Streaming SQL pipelines in the running host. The shipped pipelines count
//! each tenant's events apart and take late replies. Custom pipelines are
//! validated, created, paused, resumed and deleted over the API, and
//! results are pushed over server-sent events. A restarted host resumes
//! from its checkpoints and journals without counting an event twice.

use crate::auth::{Account, register};
use crate::support::{Host, HostOptions, app_manifest, app_options, client};
use serde_json::{Value, json};
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MINUTE: i64 = 60_000;

/// The start of the hour four days ago. Registration writes an audit
/// event stamped now, which moves the tenant's watermark to now, so the
/// test's events are days late: the shipped pipelines accept events up to
/// 14 days late, as replies arrive days after the mail.
static HOUR: LazyLock<i64> = LazyLock::new(|| {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 4 * 24 * 60 * MINUTE) / (60 * MINUTE) * (60 * MINUTE)
});

async fn call(
    host: &Host,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client()
        .request(method.parse().unwrap(), host.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn post_events(host: &Host, account: &Account, events: Vec<Value>) {
    let (status, body) = call(
        host,
        "POST",
        "/api/v1/events",
        &account.access,
        Some(json!({ "events": events })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rejected"], 0, "{body}");
}

/// Counts the caller's events in the log, audit records included, which is
/// what a pipeline reading all of them counts.
async fn logged_events(host: &Host, account: &Account) -> i64 {
    let (status, body) = call(
        host,
        "GET",
        "/api/v1/events?limit=1000",
        &account.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().len() as i64
}

/// Polls a pipeline's details until it has read every event of the
/// caller in the log; its figures follow its rows by one checkpoint.
async fn wait_caught_up(host: &Host, account: &Account, pipeline: &str) -> Value {
    let expected = logged_events(host, account).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, detail) = call(
            host,
            "GET",
            &format!("/api/v1/pipelines/{pipeline}"),
            &account.access,
            None,
        )
        .await;
        assert_eq!(status, 200, "{detail}");
        if detail["stats"]["events_read"] == expected {
            return detail;
        }
        assert!(
            Instant::now() < deadline,
            "{pipeline} did not read all {expected} events: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates pipeline `name` from `sql` for the account's tenant and returns
/// the status and body of the reply.
async fn create(host: &Host, account: &Account, name: &str, sql: &str) -> (u16, Value) {
    call(
        host,
        "POST",
        "/api/v1/pipelines",
        &account.access,
        Some(json!({"name": name, "sql": sql})),
    )
    .await
}

fn event(id: &str, kind: &str, campaign: &str, at: i64) -> Value {
    json!({"event_id": id, "type": kind, "campaign": campaign, "occurred_at": at})
}

/// Polls the results of `pipeline` until `done` holds for the rows, or
/// fails after 20 seconds with the last rows.
async fn wait_rows(
    host: &Host,
    account: &Account,
    pipeline: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = call(
            host,
            "GET",
            &format!("/api/v1/pipelines/{pipeline}/results"),
            &account.access,
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let rows = body["rows"].as_array().cloned().unwrap_or_default();
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for rows of {pipeline}: {body}\n{}",
            host.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Finds the row of `campaign` in the window starting at `start`.
fn row_at<'a>(rows: &'a [Value], campaign: &str, start: i64) -> Option<&'a Value> {
    rows.iter()
        .find(|r| r["window_start"] == start && r["row"]["campaign"] == campaign)
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

#[tokio::test]
async fn shipped_pipelines_count_late_replies() {
    let host = Host::start_with(&app_manifest(), app_options());
    let a = register(&host, "ops@alpha.example", "Alpha").await;
    let b = register(&host, "ops@beta.example", "Beta").await;

    let (status, list) = call(&host, "GET", "/api/v1/pipelines", &a.access, None).await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "campaign_hourly",
            "sender_domain_health",
            "variant_comparison"
        ]
    );
    for pipeline in list["pipelines"].as_array().unwrap() {
        assert_eq!(pipeline["kind"], "shipped");
        assert_eq!(pipeline["state"], "running", "{pipeline}");
    }

    // Alpha's hour: 4 sent, 3 delivered, 2 opened, 1 click, 1 bounce.
    let mut alpha = Vec::new();
    for (n, kind) in [
        "sent",
        "sent",
        "sent",
        "sent",
        "delivered",
        "delivered",
        "delivered",
        "open",
        "open",
        "click",
        "bounce",
    ]
    .iter()
    .enumerate()
    {
        alpha.push(event(
            &format!("a-{n}"),
            kind,
            "spring",
            *HOUR + n as i64 * MINUTE,
        ));
    }
    post_events(&host, &a, alpha).await;
    post_events(
        &host,
        &b,
        vec![
            event("b-0", "sent", "spring", *HOUR + 5 * MINUTE),
            event("b-1", "sent", "spring", *HOUR + 6 * MINUTE),
        ],
    )
    .await;

    let rows = wait_rows(&host, &a, "campaign_hourly", |rows| {
        row_at(rows, "spring", *HOUR).is_some_and(|r| r["row"]["bounced"] == 1)
    })
    .await;
    assert_eq!(rows.len(), 1, "Alpha sees only its own row: {rows:?}");
    let row = &row_at(&rows, "spring", *HOUR).unwrap()["row"];
    assert_eq!(row["sent"], 4);
    assert_eq!(row["delivered"], 3);
    assert_eq!(row["opened"], 2);
    assert_eq!(row["clicked"], 1);
    assert_eq!(row["replied"], 0);
    assert!(close(&row["delivery_rate"], 0.75), "{row}");
    assert!(close(&row["open_rate"], 2.0 / 3.0), "{row}");
    assert!(close(&row["click_rate"], 1.0 / 3.0), "{row}");
    assert!(close(&row["bounce_rate"], 0.25), "{row}");
    assert_eq!(row["tenant"], a.tenant_id);

    let rows = wait_rows(&host, &b, "campaign_hourly", |rows| !rows.is_empty()).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["row"]["sent"], 2);
    assert_eq!(rows[0]["row"]["delivered"], 0);

    // A send three days later; the hour is closed (the watermark is past
    // its end), and then a reply to the first hour's mail arrives.
    let later = *HOUR + 72 * 60 * MINUTE;
    post_events(&host, &a, vec![event("a-later", "sent", "spring", later)]).await;
    wait_rows(&host, &a, "campaign_hourly", |rows| {
        row_at(rows, "spring", *HOUR).is_some_and(|r| r["closed"] == true)
    })
    .await;
    post_events(
        &host,
        &a,
        vec![event("a-reply", "reply", "spring", *HOUR + 30 * MINUTE)],
    )
    .await;
    let rows = wait_rows(&host, &a, "campaign_hourly", |rows| {
        row_at(rows, "spring", *HOUR).is_some_and(|r| r["row"]["replied"] == 1)
    })
    .await;
    let row = &row_at(&rows, "spring", *HOUR).unwrap()["row"];
    assert!(close(&row["reply_rate"], 1.0 / 3.0), "{row}");
    assert_eq!(row["sent"], 4, "the late reply changed only its own count");

    // Figures count the caller's own events.
    let detail = wait_caught_up(&host, &a, "campaign_hourly").await;
    assert!(detail["stats"]["events_read"].as_i64().unwrap() >= 13);
    assert_eq!(detail["stats"]["lag_ms"], 0, "{detail}");
    assert!(
        detail["sql"]
            .as_str()
            .unwrap()
            .contains("tumble(INTERVAL '1 hour')")
    );
    let detail = wait_caught_up(&host, &b, "campaign_hourly").await;
    assert!(detail["stats"]["events_read"].as_i64().unwrap() >= 2);

    // Shipped pipelines run for everyone: no tenant may stop them.
    for action in ["pause", "resume"] {
        let (status, body) = call(
            &host,
            "POST",
            &format!("/api/v1/pipelines/campaign_hourly/{action}"),
            &a.access,
            None,
        )
        .await;
        assert_eq!(status, 403, "{body}");
    }
    let (status, _) = call(
        &host,
        "DELETE",
        "/api/v1/pipelines/campaign_hourly",
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 403);
}

const CLICKS: &str = "CREATE TABLE events (
    tenant TEXT, type TEXT, campaign TEXT, occurred_at TIMESTAMP,
    WATERMARK FOR occurred_at AS occurred_at - INTERVAL '5 seconds'
) WITH (connector = 'event_log', type = 'source', allowed_lateness = '30 days');
CREATE TABLE clicks WITH (connector = 'preview', type = 'sink');
INSERT INTO clicks
SELECT tumble(INTERVAL '1 minute') AS window, campaign, count(*) AS clicks
FROM events WHERE type = 'click' GROUP BY window, campaign;";

fn clicks(rows: &[Value]) -> i64 {
    rows.iter()
        .map(|r| r["row"]["clicks"].as_i64().unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn custom_pipeline_is_validated_paused_resumed_and_deleted() {
    let host = Host::start_with(&app_manifest(), app_options());
    let a = register(&host, "admin@gamma.example", "Gamma").await;
    let b = register(&host, "admin@delta.example", "Delta").await;

    // A misspelt column: the error points at it.
    let typo = CLICKS.replace("campaign, count(*)", "campain, count(*)");
    let (status, body) = create(&host, &a, "clicks_per_minute", &typo).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "sql");
    assert_eq!(body["line"], 7, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("campain"),
        "{body}"
    );

    for (bad, field) in [
        (json!({"name": "Clicks", "sql": CLICKS}), "name"),
        (json!({"name": "clicks"}), "sql"),
        (
            json!({"name": "clicks", "sql": CLICKS, "owner": "x"}),
            "body",
        ),
        (json!({"name": "clicks", "sql": "   "}), "sql"),
    ] {
        let (status, body) = call(&host, "POST", "/api/v1/pipelines", &a.access, Some(bad)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["field"], field, "{body}");
    }
    let (status, body) = create(&host, &a, "campaign_hourly", CLICKS).await;
    assert_eq!(status, 409, "{body}");

    let (status, created) = create(&host, &a, "clicks_per_minute", CLICKS).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["kind"], "custom");
    assert_eq!(created["state"], "running");
    assert_eq!(created["outputs"], json!(["clicks"]));
    let (status, _) = create(&host, &a, "clicks_per_minute", CLICKS).await;
    assert_eq!(status, 409);

    // Another tenant cannot see it, and its clicks are not counted.
    let (status, _) = call(
        &host,
        "GET",
        "/api/v1/pipelines/clicks_per_minute",
        &b.access,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, list) = call(&host, "GET", "/api/v1/pipelines", &b.access, None).await;
    assert_eq!(list["pipelines"].as_array().unwrap().len(), 3, "{list}");
    let (status, _) = call(
        &host,
        "DELETE",
        "/api/v1/pipelines/clicks_per_minute",
        &b.access,
        None,
    )
    .await;
    assert_eq!(status, 404);

    post_events(&host, &b, vec![event("b-click", "click", "spring", *HOUR)]).await;
    post_events(
        &host,
        &a,
        (0..3)
            .map(|n| event(&format!("c-{n}"), "click", "spring", *HOUR + n * 1000))
            .chain([event("c-open", "open", "spring", *HOUR)])
            .collect(),
    )
    .await;
    let rows = wait_rows(&host, &a, "clicks_per_minute", |rows| clicks(rows) == 3).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["row"]["tenant"], a.tenant_id);

    // Paused, it reads nothing; resumed, it catches up.
    let (status, paused) = call(
        &host,
        "POST",
        "/api/v1/pipelines/clicks_per_minute/pause",
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["state"], "paused");
    post_events(
        &host,
        &a,
        (3..5)
            .map(|n| event(&format!("c-{n}"), "click", "spring", *HOUR + n * 1000))
            .collect(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rows = wait_rows(&host, &a, "clicks_per_minute", |_| true).await;
    assert_eq!(clicks(&rows), 3, "a paused pipeline changed: {rows:?}");
    let (_, detail) = call(
        &host,
        "GET",
        "/api/v1/pipelines/clicks_per_minute",
        &a.access,
        None,
    )
    .await;
    assert_eq!(detail["state"], "paused");
    assert!(detail["stats"]["lag_ms"].as_i64().unwrap() > 0, "{detail}");

    let (status, resumed) = call(
        &host,
        "POST",
        "/api/v1/pipelines/clicks_per_minute/resume",
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["state"], "running");
    wait_rows(&host, &a, "clicks_per_minute", |rows| clicks(rows) == 5).await;
    wait_caught_up(&host, &a, "clicks_per_minute").await;

    // Pages of two rows follow `next` through every row exactly once.
    post_events(
        &host,
        &a,
        (0..6)
            .map(|n| {
                event(
                    &format!("p-{n}"),
                    "click",
                    &format!("page-{n}"),
                    *HOUR + n * 60_000,
                )
            })
            .collect(),
    )
    .await;
    let all = wait_rows(&host, &a, "clicks_per_minute", |rows| clicks(rows) == 11).await;
    let mut expected: Vec<String> = all.iter().map(|r| r["key"].to_string()).collect();
    expected.sort();
    let mut paged = Vec::new();
    let mut pages = 0;
    let mut query = "?limit=2".to_string();
    loop {
        let (status, page) = call(
            &host,
            "GET",
            &format!("/api/v1/pipelines/clicks_per_minute/results{query}"),
            &a.access,
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let rows = page["rows"].as_array().unwrap();
        assert!(rows.len() <= 2, "{page}");
        paged.extend(rows.iter().map(|r| r["key"].to_string()));
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(page["truncated"], true, "{page}");
                query = format!("?limit=2&after={next}");
            }
            None => {
                assert_eq!(page["truncated"], false, "{page}");
                break;
            }
        }
    }
    assert_eq!(all.len(), 7, "one row for spring and one per page campaign");
    assert_eq!(pages, 4);
    paged.sort();
    assert_eq!(paged, expected);

    // A cursor pages only the pipeline and output it came from.
    let (_, first) = call(
        &host,
        "GET",
        "/api/v1/pipelines/clicks_per_minute/results?limit=2",
        &a.access,
        None,
    )
    .await;
    assert_eq!(first["state"], "running", "{first}");
    let next = first["next"].as_str().unwrap();
    let (status, body) = call(
        &host,
        "GET",
        &format!("/api/v1/pipelines/campaign_hourly/results?after={next}"),
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "after", "{body}");
    let (status, body) = call(
        &host,
        "GET",
        &format!("/api/v1/pipelines/clicks_per_minute/results?after={next}&after={next}"),
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "after", "a repeated parameter: {body}");

    // Bad result queries name the parameter.
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?closed=maybe", "closed"),
        ("?output=nope", "output"),
        ("?after=not-a-cursor", "after"),
    ] {
        let (status, body) = call(
            &host,
            "GET",
            &format!("/api/v1/pipelines/clicks_per_minute/results{query}"),
            &a.access,
            None,
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["field"], field, "{body}");
    }
    let (status, body) = call(
        &host,
        "GET",
        "/api/v1/pipelines/clicks_per_minute/results?tenant=someone-else",
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 400, "a tenant parameter is refused: {body}");
    assert_eq!(body["field"], "tenant", "{body}");

    let (status, _) = call(
        &host,
        "DELETE",
        "/api/v1/pipelines/clicks_per_minute",
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &host,
        "GET",
        "/api/v1/pipelines/clicks_per_minute/results",
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&host, "GET", "/api/v1/pipelines", "not-a-token", None).await;
    assert_eq!(status, 401);
}

/// Reads server-sent events from a streaming response until `until`
/// returns true for the events so far, the stream ends, or 15 seconds
/// pass. Returns `(event, id, data)` triples and whether the stream ended.
async fn read_events(
    response: &mut reqwest::Response,
    until: impl Fn(&[(String, String, Value)]) -> bool,
) -> (Vec<(String, String, Value)>, bool) {
    let mut events = Vec::new();
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => return (events, true),
            Ok(Err(e)) => panic!("stream failed: {e}"),
            Err(_) => return (events, false),
        };
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let (mut kind, mut id, mut data) = (String::new(), String::new(), String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    kind = v.to_string();
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v.to_string();
                }
            }
            if !kind.is_empty() {
                events.push((kind, id, serde_json::from_str(&data).unwrap()));
            }
        }
        if until(&events) {
            return (events, false);
        }
    }
}

#[tokio::test]
async fn results_are_pushed_over_server_sent_events() {
    let mut options = app_options();
    options
        .env
        .push(("SPIN_VARIABLE_PIPELINE_STREAM_SECS".into(), "3".into()));
    let host = Host::start_with(&app_manifest(), options);
    let a = register(&host, "live@epsilon.example", "Epsilon").await;
    let b = register(&host, "live@zeta.example", "Zeta").await;

    let stream_url = host.url("/api/v1/pipelines/campaign_hourly/stream");
    let anonymous = client().get(&stream_url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let missing = client()
        .get(host.url("/api/v1/pipelines/nothing_here/stream"))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let mut response = client()
        .get(&stream_url)
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let (events, _) = read_events(&mut response, |e| !e.is_empty()).await;
    assert_eq!(events[0].0, "snapshot");
    assert_eq!(events[0].2["rows"], json!([]));

    post_events(&host, &b, vec![event("z-0", "sent", "spring", *HOUR)]).await;
    post_events(
        &host,
        &a,
        vec![
            event("e-0", "sent", "spring", *HOUR),
            event("e-1", "sent", "spring", *HOUR + MINUTE),
        ],
    )
    .await;
    let (events, _) = read_events(&mut response, |e| {
        e.iter()
            .any(|(kind, _, data)| kind == "update" && data["row"]["sent"] == 2)
    })
    .await;
    let updates: Vec<_> = events
        .iter()
        .filter(|(kind, _, _)| kind == "update")
        .collect();
    assert!(!updates.is_empty(), "{events:?}");
    for (_, _, data) in &updates {
        assert_eq!(
            data["row"]["tenant"], a.tenant_id,
            "another tenant's row was pushed"
        );
        assert_eq!(data["op"], "upsert");
    }
    let last_id = updates.last().unwrap().1.clone();

    // The stream ends by itself after its time; the client reconnects with
    // the last id and gets only what it missed.
    let (_, ended) = read_events(&mut response, |_| false).await;
    assert!(ended, "the stream did not end after its time");
    post_events(
        &host,
        &a,
        vec![event("e-2", "sent", "spring", *HOUR + 2 * MINUTE)],
    )
    .await;
    let mut resumed = client()
        .get(&stream_url)
        .bearer_auth(&a.access)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    let (events, _) = read_events(&mut resumed, |e| {
        e.iter()
            .any(|(kind, _, data)| kind == "update" && data["row"]["sent"] == 3)
    })
    .await;
    assert!(
        events.iter().all(|(kind, _, _)| kind == "update"),
        "a resumed stream sent a snapshot: {events:?}"
    );
    assert!(
        events.iter().any(|(_, _, data)| data["row"]["sent"] == 3),
        "{events:?}"
    );

    // An id from another run (unknown epoch) gets a fresh snapshot.
    let mut stale = client()
        .get(&stream_url)
        .bearer_auth(&a.access)
        .header("last-event-id", "00ff00ff00ff:7")
        .send()
        .await
        .unwrap();
    let (events, _) = read_events(&mut stale, |e| !e.is_empty()).await;
    assert_eq!(events[0].0, "snapshot", "{events:?}");
    assert_eq!(events[0].2["rows"][0]["row"]["sent"], 3);
}

#[tokio::test]
async fn host_window_budget_caps_all_pipelines() {
    let mut options = app_options();
    options
        .args
        .extend(["--pipeline-max-windows".into(), "6".into()]);
    let host = Host::start_with(&app_manifest(), options);
    let a = register(&host, "ops@budget-a.example", "Budget A").await;
    let b = register(&host, "ops@budget-b.example", "Budget B").await;
    // Each campaign opens a window in campaign_hourly (variant_comparison
    // needs a variant): 20 in all, for a budget of 6.
    for (account, tag) in [(&a, "a"), (&b, "b")] {
        post_events(
            &host,
            account,
            (0..10)
                .map(|n| {
                    event(
                        &format!("{tag}-{n}"),
                        "sent",
                        &format!("c-{n}"),
                        *HOUR + n * MINUTE,
                    )
                })
                .collect(),
        )
        .await;
    }

    let (mut open_windows, mut over_limit) = (0, 0);
    for account in [&a, &b] {
        for pipeline in [
            "campaign_hourly",
            "variant_comparison",
            "sender_domain_health",
        ] {
            let detail = wait_caught_up(&host, account, pipeline).await;
            open_windows += detail["stats"]["open_windows"].as_i64().unwrap();
            over_limit += detail["stats"]["dropped_over_limit"].as_i64().unwrap();
        }
    }
    assert_eq!(open_windows, 6, "windows open");
    assert_eq!(over_limit, 14, "rows over the limit");
    let metrics = client()
        .get(host.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\ncopycar_pipeline_windows 6\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\ncopycar_pipeline_window_budget 6\n"),
        "{metrics}"
    );
    let (_, list) = call(&host, "GET", "/api/v1/pipelines", &a.access, None).await;
    assert!(
        list["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "running"),
        "{list}"
    );
}

#[tokio::test]
async fn restarted_host_resumes_pipelines_without_counting_twice() {
    let data = tempfile::tempdir().unwrap();
    let options = HostOptions {
        data_dir: Some(data.path().to_path_buf()),
        ..app_options()
    };
    let host = Host::start_with(&app_manifest(), options.clone());
    let a = register(&host, "ops@eta.example", "Eta").await;
    let (status, body) = create(&host, &a, "clicks_per_minute", CLICKS).await;
    assert_eq!(status, 201, "{body}");
    post_events(
        &host,
        &a,
        (0..4)
            .map(|n| event(&format!("r-{n}"), "click", "spring", *HOUR + n * 1000))
            .collect(),
    )
    .await;
    wait_rows(&host, &a, "clicks_per_minute", |rows| clicks(rows) == 4).await;
    wait_rows(&host, &a, "campaign_hourly", |rows| !rows.is_empty()).await;
    let (_, before) = call(&host, "GET", "/api/v1/pipelines", &a.access, None).await;
    // SIGKILL: the checkpoints written so far are all there is.
    drop(host);

    let host = Host::start_with(&app_manifest(), options);
    let rows = wait_rows(&host, &a, "clicks_per_minute", |_| true).await;
    assert_eq!(clicks(&rows), 4, "rows after restart: {rows:?}");
    let (_, after) = call(&host, "GET", "/api/v1/pipelines", &a.access, None).await;
    let created = |list: &Value| -> Vec<(String, i64)> {
        let mut all: Vec<(String, i64)> = list["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let name = p["name"].as_str().unwrap().to_string();
                (name, p["created_at"].as_i64().unwrap())
            })
            .collect();
        all.sort();
        all
    };
    assert_eq!(created(&before).len(), 4, "{before}");
    assert_eq!(created(&after), created(&before), "creation times moved");
    post_events(
        &host,
        &a,
        vec![event("r-4", "click", "spring", *HOUR + 4000)],
    )
    .await;
    wait_rows(&host, &a, "clicks_per_minute", |rows| clicks(rows) == 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = wait_rows(&host, &a, "clicks_per_minute", |_| true).await;
    assert_eq!(clicks(&rows), 5, "an event was counted twice: {rows:?}");
    wait_caught_up(&host, &a, "clicks_per_minute").await;
}

fn clicked(rows: &[Value]) -> i64 {
    rows.iter()
        .map(|r| r["row"]["clicked"].as_i64().unwrap_or(0))
        .sum()
}

/// Reads the next log offset from the checkpoint of shipped pipeline
/// `name`, or returns `None` when there is no checkpoint.
fn checkpoint_offset(data: &std::path::Path, name: &str) -> Option<u64> {
    let path = data
        .join("pipelines/state/shipped")
        .join(format!("{name}.checkpoint.json"));
    let bytes = std::fs::read(path).ok()?;
    let checkpoint: Value = serde_json::from_slice(&bytes).unwrap();
    checkpoint["next_offset"].as_u64()
}

#[tokio::test]
async fn stop_writes_checkpoints_and_crash_replays() {
    let data = tempfile::tempdir().unwrap();
    let mut options = HostOptions {
        data_dir: Some(data.path().to_path_buf()),
        ..app_options()
    };
    // An hour between checkpoint writes: only a stop writes one here.
    options
        .args
        .extend(["--pipeline-checkpoint-ms".into(), "3600000".into()]);
    let host = Host::start_with(&app_manifest(), options.clone());
    let a = register(&host, "ops@nu.example", "Nu").await;
    post_events(
        &host,
        &a,
        (0..4)
            .map(|n| event(&format!("k-{n}"), "click", "autumn", *HOUR + n * 1000))
            .collect(),
    )
    .await;
    wait_rows(&host, &a, "campaign_hourly", |rows| clicked(rows) == 4).await;
    wait_caught_up(&host, &a, "campaign_hourly").await;
    let logged = logged_events(&host, &a).await as u64;
    // Only the empty checkpoint written at the first start is there.
    assert_eq!(checkpoint_offset(data.path(), "campaign_hourly"), Some(0));

    // SIGTERM: every pipeline writes its checkpoint before the exit.
    let logs = host.stop();
    assert!(logs.contains("stopped the pipelines"), "{logs}");
    assert_eq!(
        checkpoint_offset(data.path(), "campaign_hourly"),
        Some(logged)
    );

    // SIGKILL after one more event: the checkpoint is behind, and the
    // restarted host replays the journaled step without counting twice.
    let host = Host::start_with(&app_manifest(), options.clone());
    post_events(
        &host,
        &a,
        vec![event("k-4", "click", "autumn", *HOUR + 4000)],
    )
    .await;
    wait_rows(&host, &a, "campaign_hourly", |rows| clicked(rows) == 5).await;
    drop(host);
    assert_eq!(
        checkpoint_offset(data.path(), "campaign_hourly"),
        Some(logged)
    );

    let host = Host::start_with(&app_manifest(), options);
    wait_caught_up(&host, &a, "campaign_hourly").await;
    let rows = wait_rows(&host, &a, "campaign_hourly", |_| true).await;
    assert_eq!(clicked(&rows), 5, "rows after the replay: {rows:?}");
}

#[tokio::test]
async fn long_operator_chains_are_rejected() {
    let host = Host::start_with(&app_manifest(), app_options());
    let a = register(&host, "chains@theta.example", "Theta").await;

    // DataFusion plans nested expressions by recursion; past the limit
    // they are refused before planning, below it they run.
    let sum = |n: usize| format!("count(1){}", "+1".repeat(n));
    let (status, body) = call(
        &host,
        "POST",
        "/api/v1/sql",
        &a.access,
        Some(json!({"sql": format!("SELECT {} AS n FROM events", sum(200))})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The count is of the compacted history, so 0 or more.
    assert!(body["rows"][0][0].as_i64().unwrap() >= 200, "{body}");
    for deep in [
        format!("SELECT (true{}) AS x FROM events", " IS TRUE".repeat(5000)),
        format!("SELECT 1{} AS x FROM events", "::BIGINT".repeat(3000)),
    ] {
        let (status, body) = call(
            &host,
            "POST",
            "/api/v1/sql",
            &a.access,
            Some(json!({"sql": deep})),
        )
        .await;
        assert_eq!(status, 400, "{body}");
    }
    let (status, body) = call(
        &host,
        "POST",
        "/api/v1/sql",
        &a.access,
        Some(json!({"sql": format!("SELECT {} AS n FROM events", sum(5000))})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("levels deep"),
        "{body}"
    );

    let sql = CLICKS.replace("count(*) AS clicks", &format!("{} AS clicks", sum(5000)));
    let (status, body) = create(&host, &a, "chain", &sql).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["line"], 7, "{body}");
    assert!(body["request_id"].is_string(), "{body}");

    let health = client().get(host.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn second_host_on_a_data_directory_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let options = HostOptions {
        data_dir: Some(data.path().to_path_buf()),
        ..app_options()
    };
    let _first = Host::start_with(&app_manifest(), options.clone());
    let logs = crate::support::start_failure(&app_manifest(), options);
    assert!(
        logs.contains("is in use by another copycar process"),
        "{logs}"
    );
}

#[tokio::test]
async fn open_streams_are_limited_per_tenant() {
    let mut options = app_options();
    options
        .env
        .push(("SPIN_VARIABLE_PIPELINE_STREAM_SECS".into(), "4".into()));
    let host = Host::start_with(&app_manifest(), options);
    let a = register(&host, "streams@iota.example", "Iota").await;
    let b = register(&host, "streams@kappa.example", "Kappa").await;
    let url = host.url("/api/v1/pipelines/campaign_hourly/stream");
    let open = |token: String| {
        let url = url.clone();
        async move { client().get(&url).bearer_auth(token).send().await.unwrap() }
    };

    let mut held = Vec::new();
    for _ in 0..8 {
        let response = open(a.access.clone()).await;
        assert_eq!(response.status(), 200);
        held.push(response);
    }
    let refused = open(a.access.clone()).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("result streams"),
        "{body}"
    );
    // Another tenant is not affected.
    assert_eq!(open(b.access.clone()).await.status(), 200);

    // Streams that end give their place back.
    for mut response in held {
        while let Ok(Some(_)) = response.chunk().await {}
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(open(a.access.clone()).await.status(), 200);
}

/// Builds a pipeline with `outputs` tumbling-window queries, each allowed
/// `limit` open windows and live rows per tenant.
fn wide_pipeline(outputs: usize, limit: usize) -> String {
    let mut sql = format!(
        "CREATE TABLE events (
    tenant TEXT, type TEXT, campaign TEXT, occurred_at TIMESTAMP,
    WATERMARK FOR occurred_at AS occurred_at
) WITH (
    connector = 'event_log', type = 'source',
    max_open_windows = '{limit}', max_result_rows = '{limit}'
);\n"
    );
    for n in 0..outputs {
        sql.push_str(&format!(
            "CREATE TABLE out_{n} WITH (connector = 'preview', type = 'sink');
INSERT INTO out_{n} SELECT tumble(INTERVAL '{} minute') AS window, campaign, count(*) AS events
FROM events GROUP BY window, campaign;\n",
            n + 1
        ));
    }
    sql
}

#[tokio::test]
async fn custom_pipelines_share_limits_per_tenant() {
    let host = Host::start_with(&app_manifest(), app_options());
    let a = register(&host, "limits@lambda.example", "Lambda").await;
    let b = register(&host, "limits@mu.example", "Mu").await;
    let create = |token: String, name: String, sql: String| {
        let host = &host;
        async move {
            call(
                host,
                "POST",
                "/api/v1/pipelines",
                &token,
                Some(json!({"name": name, "sql": sql})),
            )
            .await
        }
    };

    // 5 outputs of 100,000 windows and rows take the whole budget of
    // 500,000.
    let (status, wide) = create(a.access.clone(), "wide".into(), wide_pipeline(5, 100_000)).await;
    assert_eq!(status, 201, "{wide}");
    assert_eq!(wide["outputs"].as_array().unwrap().len(), 5);
    assert_eq!(wide["stats"]["window_capacity"], 500_000, "{wide}");
    assert_eq!(wide["stats"]["rows_trimmed"], 0, "{wide}");

    let (status, body) = create(a.access.clone(), "narrow".into(), wide_pipeline(1, 1)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "limit", "{body}");
    assert_eq!(body["field"], "sql", "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("500000"), "{message}");
    assert!(message.contains("max_open_windows"), "{message}");
    assert!(message.contains("max_result_rows"), "{message}");

    // Another tenant has its own budget.
    let (status, body) = create(b.access.clone(), "narrow".into(), wide_pipeline(1, 1)).await;
    assert_eq!(status, 201, "{body}");

    // Deleting frees the windows.
    let (status, _) = call(&host, "DELETE", "/api/v1/pipelines/wide", &a.access, None).await;
    assert_eq!(status, 200);
    let (status, body) = create(a.access.clone(), "narrow".into(), wide_pipeline(1, 1)).await;
    assert_eq!(status, 201, "{body}");

    // Twelve creates at once: the count limit of 10 holds, so exactly 9
    // more are stored beside `narrow`.
    let creates =
        (0..12).map(|n| create(a.access.clone(), format!("p{n}"), wide_pipeline(1, 1000)));
    let results = futures_util::future::join_all(creates).await;
    let statuses: Vec<u16> = results.iter().map(|(status, _)| *status).collect();
    let created = statuses.iter().filter(|status| **status == 201).count();
    let refused: Vec<&Value> = results
        .iter()
        .filter(|(status, _)| *status == 409)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(created, 9, "{statuses:?}");
    assert_eq!(refused.len(), 3, "{statuses:?}");
    for body in refused {
        assert_eq!(body["code"], "limit", "{body}");
    }
    let (_, list) = call(&host, "GET", "/api/v1/pipelines", &a.access, None).await;
    let custom = list["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "custom")
        .count();
    assert_eq!(custom, 10, "{list}");
}

fn copycar(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_copycar"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_checks_and_exports_shipped_pipelines() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines");
    let output = copycar(&["pipelines", "check", shipped]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(stdout.matches("ok    ").count(), 3, "{stdout}");

    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let output = copycar(&[
        "pipelines",
        "export",
        "--target",
        "arroyo",
        "--topic",
        "events-test",
        "--out",
        out_dir,
        shipped,
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for name in [
        "campaign_hourly",
        "variant_comparison",
        "sender_domain_health",
    ] {
        let sql = std::fs::read_to_string(out.path().join(format!("{name}.sql"))).unwrap();
        assert!(sql.contains("connector = 'fluvio'"), "{name}: {sql}");
        assert!(sql.contains("topic = 'events-test'"), "{name}: {sql}");
        assert!(!sql.contains("'event_log'"), "{name}: {sql}");
    }
}

#[test]
fn cli_check_warns_over_tenant_cap() {
    let input = tempfile::tempdir().unwrap();
    let big = CLICKS.replace(
        "allowed_lateness = '30 days'",
        "allowed_lateness = '30 days', max_result_rows = '600000'",
    );
    std::fs::write(input.path().join("big.sql"), big).unwrap();
    std::fs::write(input.path().join("small.sql"), CLICKS).unwrap();

    let output = copycar(&["pipelines", "check", input.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "a warning is not an error: {stdout}"
    );
    assert!(
        stdout.contains("big.sql: writes clicks; room for 600000 windows and rows"),
        "{stdout}"
    );
    assert!(
        stdout.contains("small.sql: writes clicks; room for 100000"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("warn  ").count(), 2, "{stdout}");
    assert!(
        stdout.contains("warn  ") && stdout.contains("big.sql: over the 500000"),
        "{stdout}"
    );
    assert!(
        stdout.contains("together these pipelines need room for 700000"),
        "{stdout}"
    );

    // Two files that fit alone but not together get only the shared warning.
    let fair = CLICKS.replace(
        "allowed_lateness = '30 days'",
        "allowed_lateness = '30 days', max_result_rows = '450000'",
    );
    std::fs::remove_file(input.path().join("big.sql")).unwrap();
    std::fs::write(input.path().join("fair.sql"), fair).unwrap();
    let output = copycar(&["pipelines", "check", input.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(stdout.matches("warn  ").count(), 1, "{stdout}");
    assert!(
        stdout.contains("together these pipelines need room for 550000"),
        "{stdout}"
    );
}

#[test]
fn cli_export_invalid_file_writes_nothing() {
    let input = tempfile::tempdir().unwrap();
    std::fs::write(input.path().join("a_clicks.sql"), CLICKS).unwrap();
    // The view drops `tenant`, so no query over it can keep tenants apart.
    let no_tenant = CLICKS
        .replace(
            "CREATE TABLE clicks",
            "CREATE VIEW bare AS SELECT type, campaign, occurred_at FROM events;\nCREATE TABLE clicks",
        )
        .replace("FROM events WHERE", "FROM bare WHERE");
    std::fs::write(input.path().join("b_bare.sql"), &no_tenant).unwrap();

    let out = tempfile::tempdir().unwrap();
    let output = copycar(&[
        "pipelines",
        "export",
        "--target",
        "arroyo",
        "--out",
        out.path().to_str().unwrap(),
        input.path().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("b_bare.sql:"), "{stderr}");
    assert!(stderr.contains("must have a `tenant` column"), "{stderr}");
    let written: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(written.is_empty(), "files were written: {written:?}");

    let output = copycar(&["pipelines", "check", input.path().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("ok    "), "{stdout}");
    assert!(stdout.contains("b_bare.sql:"), "{stdout}");
}

#[tokio::test]
async fn created_pipeline_ignores_leftover_state() {
    let data = tempfile::tempdir().unwrap();
    let options = HostOptions {
        data_dir: Some(data.path().to_path_buf()),
        ..app_options()
    };
    let host = Host::start_with(&app_manifest(), options.clone());
    let a = register(&host, "ops@xi.example", "Xi").await;
    let (status, body) = create(&host, &a, "clicks_per_minute", CLICKS).await;
    assert_eq!(status, 201, "{body}");
    post_events(&host, &a, vec![event("x-0", "click", "spring", *HOUR)]).await;
    wait_rows(&host, &a, "clicks_per_minute", |rows| clicks(rows) == 1).await;
    host.stop();

    // A delete cut short by a crash: the SQL file is gone, the state stays.
    // The checkpoint is marked so that restoring it would show.
    let custom = data.path().join("pipelines/custom").join(&a.tenant_id);
    std::fs::remove_file(custom.join("clicks_per_minute.sql")).unwrap();
    std::fs::remove_file(custom.join("clicks_per_minute.json")).unwrap();
    let checkpoint = data
        .path()
        .join("pipelines/state/custom")
        .join(&a.tenant_id)
        .join("clicks_per_minute.checkpoint.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    state["events_by_tenant"][&a.tenant_id] = json!(999_999);
    std::fs::write(&checkpoint, serde_json::to_vec(&state).unwrap()).unwrap();

    let host = Host::start_with(&app_manifest(), options);
    let (status, _) = call(
        &host,
        "GET",
        "/api/v1/pipelines/clicks_per_minute",
        &a.access,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = create(&host, &a, "clicks_per_minute", CLICKS).await;
    assert_eq!(status, 201, "{body}");
    let detail = wait_caught_up(&host, &a, "clicks_per_minute").await;
    assert!(
        detail["stats"]["events_read"].as_i64().unwrap() < 999_999,
        "{detail}"
    );
    let rows = wait_rows(&host, &a, "clicks_per_minute", |rows| clicks(rows) == 1).await;
    assert_eq!(rows.len(), 1);
    let logs = host.stop();
    assert!(
        logs.contains("removed state left by an earlier pipeline"),
        "{logs}"
    );
}
