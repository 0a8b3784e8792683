-- Per campaign and hour: how many messages were sent, delivered, opened,
-- clicked, replied to and bounced, and the rates between those steps.
-- Replies and bounces often arrive days after the send; events up to 14
-- days late still update their hour.
CREATE TABLE events (
    tenant TEXT NOT NULL,
    type TEXT NOT NULL,
    campaign TEXT,
    occurred_at TIMESTAMP NOT NULL,
    WATERMARK FOR occurred_at AS occurred_at - INTERVAL '30 seconds'
) WITH (
    connector = 'event_log',
    format = 'json',
    type = 'source',
    allowed_lateness = '14 days',
    idle_timeout = '30 seconds'
);

CREATE TABLE campaign_hourly WITH (
    connector = 'preview',
    type = 'sink'
);

INSERT INTO campaign_hourly
SELECT
    tumble(INTERVAL '1 hour') AS window,
    campaign,
    count(*) FILTER (WHERE type = 'sent') AS sent,
    count(*) FILTER (WHERE type = 'delivered') AS delivered,
    count(*) FILTER (WHERE type = 'open') AS opened,
    count(*) FILTER (WHERE type = 'click') AS clicked,
    count(*) FILTER (WHERE type = 'reply') AS replied,
    count(*) FILTER (WHERE type = 'bounce') AS bounced,
    CAST(count(*) FILTER (WHERE type = 'delivered') AS DOUBLE)
        / NULLIF(count(*) FILTER (WHERE type = 'sent'), 0) AS delivery_rate,
    CAST(count(*) FILTER (WHERE type = 'open') AS DOUBLE)
        / NULLIF(count(*) FILTER (WHERE type = 'delivered'), 0) AS open_rate,
    CAST(count(*) FILTER (WHERE type = 'click') AS DOUBLE)
        / NULLIF(count(*) FILTER (WHERE type = 'delivered'), 0) AS click_rate,
    CAST(count(*) FILTER (WHERE type = 'reply') AS DOUBLE)
        / NULLIF(count(*) FILTER (WHERE type = 'delivered'), 0) AS reply_rate,
    CAST(count(*) FILTER (WHERE type = 'bounce') AS DOUBLE)
        / NULLIF(count(*) FILTER (WHERE type = 'sent'), 0) AS bounce_rate
FROM events
WHERE campaign IS NOT NULL
GROUP BY window, campaign;
