-- Job listing: the number of regular tasks of each job (so listing never parses graphs), counted
-- from the stored graph for jobs registered before this column existed.
ALTER TABLE jobs ADD COLUMN task_count BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET task_count = COALESCE(JSON_LENGTH(graph_json, '$.tasks'), 0)
    WHERE JSON_VALID(graph_json);
