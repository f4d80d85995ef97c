-- Every hall's event log, keyed by (hall, seq) as the hall's own SQLite log keys it by seq.
CREATE TABLE halls (
    hall       text PRIMARY KEY,
    -- every event of the hall up to this seq is in `events` (or was purged from the hall before the collector
    -- saw it): a catch-up asks the hall for what comes after it
    contiguous bigint NOT NULL DEFAULT 0,
    first_seen timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    hall text NOT NULL REFERENCES halls (hall),
    seq  bigint NOT NULL,
    at   timestamptz NOT NULL,  -- the body's "at" (the hall's local time, with its offset) as an instant
    type text NOT NULL,
    body jsonb NOT NULL,        -- the event as the hall logged and published it: {"v":1,"seq":..,"at":..,"type":..}
    PRIMARY KEY (hall, seq)
);

-- where each day of a hall starts: the report reads a hall's days from these
CREATE INDEX events_day_started ON events (hall, seq) WHERE type = 'day.started';
CREATE INDEX events_at ON events (at);
