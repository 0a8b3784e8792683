-- Per campaign and day: the outcome counts and rates of each message
-- variant side by side, to compare the variants of an A/B test. Replies up
-- to 14 days late still count for their day.
CREATE TABLE events (
    tenant TEXT NOT NULL,
    type TEXT NOT NULL,
    campaign TEXT,
    variant TEXT,
    occurred_at TIMESTAMP NOT NULL,
    WATERMARK FOR occurred_at AS occurred_at - INTERVAL '1 minute'
) WITH (
    connector = 'event_log',
    format = 'json',
    type = 'source',
    allowed_lateness = '14 days',
    idle_timeout = '1 minute'
);

CREATE TABLE variant_comparison WITH (
    connector = 'preview',
    type = 'sink'
);

INSERT INTO variant_comparison
SELECT
    tumble(INTERVAL '1 day') AS window,
    campaign,
    variant,
    count(*) FILTER (WHERE type = 'sent') AS sent,
    count(*) FILTER (WHERE type = 'delivered') AS delivered,
    count(*) FILTER (WHERE type = 'open') AS opened,
    count(*) FILTER (WHERE type = 'click') AS clicked,
    count(*) FILTER (WHERE type = 'reply') AS replied,
    CAST(count(*) FILTER (WHERE type = 'open') AS DOUBLE)
        / NULLIF(count(*) FILTER (WHERE type = 'delivered'), 0) AS open_rate,
    CAST(count(*) FILTER (WHERE type = 'click') AS DOUBLE)
        / NULLIF(count(*) FILTER (WHERE type = 'delivered'), 0) AS click_rate,
    CAST(count(*) FILTER (WHERE type = 'reply') AS DOUBLE)
        / NULLIF(count(*) FILTER (WHERE type = 'sent'), 0) AS reply_rate
FROM events
WHERE campaign IS NOT NULL AND variant IS NOT NULL
GROUP BY window, campaign, variant;
