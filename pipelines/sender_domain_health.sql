-- Per sender domain (the `sender_domain` property of an event): bounce and
-- complaint rates over the last hour, refreshed every five minutes.
CREATE TABLE events (
    tenant TEXT NOT NULL,
    type TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    properties JSON,
    WATERMARK FOR occurred_at AS occurred_at - INTERVAL '30 seconds'
) WITH (
    connector = 'event_log',
    format = 'json',
    type = 'source',
    allowed_lateness = '10 minutes',
    idle_timeout = '30 seconds'
);

CREATE VIEW domain_events AS
SELECT tenant, type, occurred_at, properties->>'sender_domain' AS sender_domain
FROM events;

CREATE TABLE sender_domain_health WITH (
    connector = 'preview',
    type = 'sink'
);

INSERT INTO sender_domain_health
SELECT
    hop(INTERVAL '5 minutes', INTERVAL '1 hour') AS window,
    sender_domain,
    count(*) FILTER (WHERE type = 'sent') AS sent,
    count(*) FILTER (WHERE type = 'bounce') AS bounced,
    count(*) FILTER (WHERE type = 'complaint') AS complaints,
    CAST(count(*) FILTER (WHERE type = 'bounce') AS DOUBLE)
        / NULLIF(count(*) FILTER (WHERE type = 'sent'), 0) AS bounce_rate,
    CAST(count(*) FILTER (WHERE type = 'complaint') AS DOUBLE)
        / NULLIF(count(*) FILTER (WHERE type = 'sent'), 0) AS complaint_rate
FROM domain_events
WHERE sender_domain IS NOT NULL
GROUP BY window, sender_domain;
