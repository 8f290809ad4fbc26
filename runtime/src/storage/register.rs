//! Registering a job: its graph arrives as compact chunks (one for a small job, a stream of them
//! for a large one) and its inputs frame in pieces. Each chunk is decoded and checked as it
//! arrives ([`JobUpload`]), the job's size is held to `max_job_bytes` before anything past it is
//! kept, and the chunks are stored as they came, one database row each.

use prost::Message as _;
use silk_core::JobState;
use silk_core::graph::{GraphError, JobGraph, JobGraphBuilder, Location, TaskGraph, check_value};
use silk_proto::storage::CompactTaskGraph;
use silk_tdl::{JobId, ResourceGroupId, frame};

use super::config::StorageConfig;
use super::db::Db;
use super::error::{Error, Result};
use super::job::JobControl;
use super::now_ms;
use super::service::{Job, Storage, off_worker};

/// Graph bytes per chunk when storage chunks a graph itself (one sent as JSON).
const CHUNK_BYTES: usize = 1 << 20;

/// Most graph chunks of one job (each is a database row; the client's are 1 MiB, so this is
/// 64 GiB of graph for them, and a flood of tiny chunks is refused early).
const MAX_CHUNKS: usize = 65_536;

/// A job being received: its graph so far (checked), the chunks to store, the inputs so far.
#[derive(Debug)]
pub struct JobUpload {
    builder: JobGraphBuilder,
    chunks: Vec<Vec<u8>>,
    inputs: Vec<u8>,
    max_job_bytes: u64,
    max_chunk_bytes: u64,
}

impl JobUpload {
    /// An empty upload under `config`'s limits.
    #[must_use]
    pub fn new(config: &StorageConfig) -> Self {
        Self {
            builder: JobGraphBuilder::new(),
            chunks: Vec::new(),
            inputs: Vec::new(),
            max_job_bytes: config.max_job_bytes,
            max_chunk_bytes: config.db_max_write_bytes,
        }
    }

    /// The chunk size storage cuts a graph into itself: a chunk may overshoot it (see
    /// [`TaskGraph::to_compact_chunks`]), so half a row at most.
    fn chunk_bytes(&self) -> usize {
        let half_row = usize::try_from(self.max_chunk_bytes / 2).unwrap_or(usize::MAX);
        CHUNK_BYTES.min(half_row).max(1)
    }

    /// Refuses the job if `more` bytes would take it past `max_job_bytes`.
    fn reserve(&self, more: usize) -> Result<()> {
        let (graph, inputs) = (self.builder.bytes(), self.inputs.len() as u64);
        let total = graph.saturating_add(inputs).saturating_add(more as u64);
        if total <= self.max_job_bytes {
            return Ok(());
        }
        Err(Error::BadRequest(format!(
            "the job is too large: its graph ({} tasks so far, {graph} bytes in compact form) and \
             inputs ({inputs} bytes) reach {total} bytes, more than storage takes in one job \
             (max_job_bytes = {}); split it into several jobs",
            self.builder.tasks(),
            self.max_job_bytes
        )))
    }

    /// Adds the next graph chunk, checking each of its tasks.
    ///
    /// # Errors
    /// [`Error::BadRequest`] past a limit, [`Error::Graph`] for an invalid graph.
    pub fn add_graph(&mut self, chunk: &CompactTaskGraph) -> Result<()> {
        self.add_encoded_graph(chunk.encode_to_vec())
    }

    /// Adds the next graph chunk as it came on the wire (an encoded [`CompactTaskGraph`]),
    /// checking each of its tasks.
    ///
    /// # Errors
    /// As [`Self::add_graph`]; [`Error::Graph`] for bytes that do not decode.
    pub fn add_encoded_graph(&mut self, encoded: Vec<u8>) -> Result<()> {
        self.reserve(encoded.len())?;
        if self.chunks.len() >= MAX_CHUNKS {
            return Err(Error::BadRequest(format!(
                "a graph in more than {MAX_CHUNKS} chunks ({} tasks so far): send it in larger \
                 chunks",
                self.builder.tasks()
            )));
        }
        if encoded.len() as u64 > self.max_chunk_bytes {
            return Err(Error::BadRequest(format!(
                "a graph chunk of {} bytes (tasks {} on) is larger than storage writes in one \
                 row (db_max_write_bytes = {}): send the graph in smaller chunks",
                encoded.len(),
                self.builder.tasks(),
                self.max_chunk_bytes
            )));
        }
        let chunk = CompactTaskGraph::decode(encoded.as_slice()).map_err(|e| {
            Error::Graph(GraphError {
                location: Location::Graph,
                reason: format!("graph chunk {} does not decode: {e}", self.chunks.len()),
            })
        })?;
        self.builder.push(&chunk, encoded.len() as u64)?;
        drop(chunk);
        self.chunks.push(encoded);
        Ok(())
    }

    /// Appends bytes of the inputs frame.
    ///
    /// # Errors
    /// [`Error::BadRequest`] past `max_job_bytes`.
    pub fn add_inputs(&mut self, bytes: &[u8]) -> Result<()> {
        self.reserve(bytes.len())?;
        self.inputs.extend_from_slice(bytes);
        Ok(())
    }
}

impl<D: Db + Clone> Storage<D> {
    /// An empty upload under this storage's limits.
    #[must_use]
    pub fn upload(&self) -> JobUpload {
        JobUpload::new(&self.shared.config)
    }

    /// Registers a job given as graph JSON (state `Ready`; not started).
    ///
    /// # Errors
    /// [`Error::Graph`] for an invalid graph, [`Error::BadRequest`] for an inputs frame that does
    /// not match it or a job past `max_job_bytes`, a database error for an unknown resource
    /// group.
    pub async fn register_job(
        &self,
        group: ResourceGroupId,
        graph_json: &str,
        inputs: &[u8],
    ) -> Result<JobId> {
        let (json, inputs) = (graph_json.to_owned(), inputs.to_vec());
        let mut upload = self.upload();
        // Parsing and checking a large graph takes milliseconds: not on a tokio worker.
        let upload = off_worker(move || {
            let graph = TaskGraph::from_json(&json)?;
            for chunk in graph.to_compact_chunks(upload.chunk_bytes()) {
                upload.add_graph(&chunk)?;
            }
            upload.add_inputs(&inputs)?;
            Ok(upload)
        })
        .await?;
        self.register_upload(group, upload).await
    }

    /// Registers a job given as one compact chunk.
    ///
    /// # Errors
    /// As [`Self::register_job`].
    pub async fn register_compact_job(
        &self,
        group: ResourceGroupId,
        graph: CompactTaskGraph,
        inputs: &[u8],
    ) -> Result<JobId> {
        let mut upload = self.upload();
        upload.add_inputs(inputs)?;
        let upload = off_worker(move || {
            upload.add_graph(&graph)?;
            Ok(upload)
        })
        .await?;
        self.register_upload(group, upload).await
    }

    /// Registers a completely received job.
    ///
    /// # Errors
    /// As [`Self::register_job`].
    pub async fn register_upload(
        &self,
        group: ResourceGroupId,
        upload: JobUpload,
    ) -> Result<JobId> {
        let JobUpload {
            builder,
            chunks,
            inputs,
            ..
        } = upload;
        let (graph, inputs) = off_worker(move || {
            let graph = builder.finish()?;
            check_job_inputs(&graph, &inputs)?;
            Ok((graph, inputs))
        })
        .await?;
        let needed = JobControl::memory_estimate(&graph);
        let memory = &self.shared.job_memory;
        let charge = memory.try_charge(needed).ok_or_else(|| {
            Error::Full(format!(
                "storage is holding {} bytes of unfinished jobs and this job of {} tasks needs                  {needed} more, past job_memory_budget_bytes = {}; submit it when jobs have ended",
                memory.used(),
                graph.len(),
                memory.limit()
            ))
        })?;
        let id = self
            .shared
            .db
            .insert_job(group, &chunks, &inputs, graph.len() as u64, now_ms())
            .await?;
        drop(chunks);
        let budget = self.shared.budget.clone();
        let control = off_worker(move || {
            Ok(JobControl::new(id, group, graph, &inputs, JobState::Ready)?
                .with_budget(budget)
                .with_memory(charge))
        })
        .await?;
        self.insert(Job::new(control));
        tracing::info!(job_id = id.0, resource_group = group.0, "job registered");
        Ok(id)
    }
}

/// Checks a job's inputs frame against its graph: one value per job input, each of its declared
/// type.
fn check_job_inputs(graph: &JobGraph, inputs: &[u8]) -> Result<()> {
    let values = frame::decode_exact(inputs, graph.job_inputs().count())
        .map_err(|e| Error::BadRequest(format!("job inputs: {e}")))?;
    for (k, ((task, position), value)) in graph.job_inputs().zip(values).enumerate() {
        let ty = graph.input_types(task).nth(position);
        ty.map_or(Ok(()), |ty| check_value(ty, value))
            .map_err(|e| {
                Error::BadRequest(format!(
                    "job input {k} (input {position} of task {task}, {}::{}): {e}",
                    graph.package(task),
                    graph.function(task)
                ))
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph sent as a flood of one-task chunks (each a database row) is refused once it
    /// passes the chunk limit, with the reason.
    #[test]
    fn a_flood_of_tiny_chunks_is_refused() {
        let json = r#"{"schema_version": "1.0", "tasks": [{"package": "p", "function": "f"}]}"#;
        let chunk = TaskGraph::from_json(json).unwrap().to_compact();
        let mut upload = JobUpload::new(&StorageConfig::default());
        for _ in 0..MAX_CHUNKS {
            upload.add_graph(&chunk).unwrap();
        }
        let e = upload.add_graph(&chunk).unwrap_err().to_string();
        assert!(
            e.contains("more than 65536 chunks (65536 tasks so far)"),
            "{e}"
        );
    }
}
