-- Job listing: the number of regular tasks of each job (so listing never parses graphs), counted
-- from the stored graph for jobs registered before this column existed; an index for newest-first
-- listing by resource group.
ALTER TABLE jobs ADD COLUMN task_count INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET task_count = COALESCE(json_array_length(graph_json, '$.tasks'), 0)
    WHERE json_valid(graph_json);
CREATE INDEX jobs_resource_group ON jobs (resource_group_id, id);
