-- A job's graph (compact chunks, kind 0) and inputs frame (pieces, kind 1), in order, each within
-- db_max_write_bytes, so no job's size is capped by what one row may hold. Jobs stored before this
-- keep their graph and inputs in their own row.
CREATE TABLE job_parts (
    job_id BIGINT NOT NULL,
    kind TINYINT NOT NULL,
    seq INT NOT NULL,
    bytes LONGBLOB NOT NULL,
    PRIMARY KEY (job_id, kind, seq),
    CONSTRAINT job_parts_job FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE
) ENGINE = InnoDB;
