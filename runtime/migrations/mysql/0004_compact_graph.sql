-- Jobs keep their task graph in compact form (protobuf bytes, about an eighth of the JSON).
-- Rows written before this keep their JSON in graph_json; new rows leave it empty.
ALTER TABLE jobs ADD COLUMN graph LONGBLOB NULL;
