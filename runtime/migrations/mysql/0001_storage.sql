-- silk storage schema, MySQL/MariaDB flavour. Times are milliseconds since the Unix epoch.

CREATE TABLE resource_groups (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    external_id VARCHAR(255) NOT NULL,
    -- argon2id PHC string; the secret itself is never stored.
    secret_hash VARCHAR(255) NOT NULL,
    created_at_ms BIGINT NOT NULL,
    UNIQUE KEY resource_groups_external_id (external_id)
) ENGINE = InnoDB;

CREATE TABLE jobs (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    resource_group_id BIGINT NOT NULL,
    state VARCHAR(16) NOT NULL,
    graph_json LONGTEXT NOT NULL,
    inputs LONGBLOB NOT NULL,
    outputs LONGBLOB NULL,
    error_message LONGTEXT NULL,
    failure_kind VARCHAR(32) NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT NULL,
    KEY jobs_state (state, ended_at_ms),
    CONSTRAINT jobs_resource_group FOREIGN KEY (resource_group_id) REFERENCES resource_groups (id)
) ENGINE = InnoDB;

-- One row per succeeded regular task: its outputs frame. A restarted storage rebuilds running
-- jobs from these rows and does not run those tasks again.
CREATE TABLE task_completions (
    job_id BIGINT NOT NULL,
    task_index BIGINT NOT NULL,
    outputs LONGBLOB NOT NULL,
    completed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (job_id, task_index),
    CONSTRAINT task_completions_job FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE
) ENGINE = InnoDB;

CREATE TABLE sessions (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    started_at_ms BIGINT NOT NULL
) ENGINE = InnoDB;

CREATE TABLE execution_managers (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    address VARCHAR(255) NOT NULL,
    state VARCHAR(8) NOT NULL,
    registered_at_ms BIGINT NOT NULL,
    last_heartbeat_ms BIGINT NOT NULL,
    dead_at_ms BIGINT NULL,
    KEY execution_managers_liveness (state, last_heartbeat_ms)
) ENGINE = InnoDB;

CREATE TABLE schedulers (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    host VARCHAR(255) NOT NULL,
    port INT NOT NULL,
    registered_at_ms BIGINT NOT NULL
) ENGINE = InnoDB;
