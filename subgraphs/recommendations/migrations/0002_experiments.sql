-- A/B experiments of the recommendations (subgraphs/recommendations/experiments.py). An experiment splits the
-- shoppers who see recommendedForYou between its variants by a hash of (key, subject), so the split needs no
-- table; `experiment_exposures` records who saw which variant, first time only, which is what results count.
-- `variants` is the ordered list [{name, weight, model_version, parameters}] (the first is the control), written
-- once: changing the weights of a running experiment would move shoppers between variants.
CREATE TABLE {schema}.experiments (
    id          bigint      PRIMARY KEY,
    key         text        NOT NULL,
    status      text        NOT NULL DEFAULT 'RUNNING',
    variants    jsonb       NOT NULL,
    created_by  bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at  timestamptz,
    CONSTRAINT experiment_key_unique UNIQUE (key),
    CONSTRAINT experiment_key_length CHECK (char_length(key) BETWEEN 1 AND 64),
    CONSTRAINT experiment_status CHECK (status IN ('RUNNING', 'STOPPED')),
    CONSTRAINT experiment_stopped_when CHECK ((status = 'STOPPED') = (stopped_at IS NOT NULL)),
    CONSTRAINT experiment_variants_list CHECK (jsonb_typeof(variants) = 'array' AND jsonb_array_length(variants) >= 2)
);
-- The experiment recommendedForYou applies: the most recent RUNNING one.
CREATE INDEX experiments_running_idx ON {schema}.experiments (created_at DESC, id DESC) WHERE status = 'RUNNING';

-- A subject's first exposure to an experiment: one row per (experiment, subject), so recording it again is a
-- no-op (INSERT ... ON CONFLICT DO NOTHING) and only the first one emits experiment.exposed. No foreign key:
-- experiments are never deleted, and a process still holding a vanished one (a row removed by hand) must not
-- fail recommendedForYou over it for the seconds until it reads the running experiment again.
CREATE TABLE {schema}.experiment_exposures (
    experiment_id  bigint      NOT NULL,
    subject        text        NOT NULL,
    variant        text        NOT NULL,
    exposed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_id, subject)
);
