-- silk storage schema, SQLite flavour. Times are milliseconds since the Unix epoch.

CREATE TABLE resource_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id TEXT NOT NULL UNIQUE,
    -- argon2id PHC string; the secret itself is never stored.
    secret_hash TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_group_id INTEGER NOT NULL REFERENCES resource_groups (id),
    state TEXT NOT NULL,
    graph_json TEXT NOT NULL,
    inputs BLOB NOT NULL,
    outputs BLOB,
    error_message TEXT,
    failure_kind TEXT,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    ended_at_ms INTEGER
);
CREATE INDEX jobs_state ON jobs (state, ended_at_ms);

-- One row per succeeded regular task: its outputs frame. A restarted storage rebuilds running
-- jobs from these rows and does not run those tasks again.
CREATE TABLE task_completions (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    task_index INTEGER NOT NULL,
    outputs BLOB NOT NULL,
    completed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (job_id, task_index)
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at_ms INTEGER NOT NULL
);

CREATE TABLE execution_managers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    registered_at_ms INTEGER NOT NULL,
    last_heartbeat_ms INTEGER NOT NULL,
    dead_at_ms INTEGER
);
CREATE INDEX execution_managers_liveness ON execution_managers (state, last_heartbeat_ms);

CREATE TABLE schedulers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    registered_at_ms INTEGER NOT NULL
);
