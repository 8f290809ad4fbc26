//! Task outputs that memory no longer holds: the job control block answers with [`Part`]s when
//! some values are only in the database (over the output memory budget, or no longer read by an
//! unfinished child), and this reads them back and frames them.

use std::collections::HashMap;

use silk_tdl::{JobId, frame};

use super::db::Db;
use super::error::{Error, Result};
use super::job::Part;
use super::service::Storage;

impl<D: Db + Clone> Storage<D> {
    /// Frames `parts` in order, reading each stored task's outputs from the database once.
    ///
    /// # Errors
    /// A database error; [`Error::BadRequest`] if a completion the job counts as persisted is
    /// missing or malformed (a corrupt database).
    pub(super) async fn assemble(&self, job: JobId, parts: &[Part]) -> Result<Vec<u8>> {
        let mut frames: HashMap<u64, Vec<u8>> = HashMap::new();
        for part in parts {
            if let Part::Stored { task, .. } = part
                && !frames.contains_key(task)
            {
                let outputs = self
                    .shared
                    .db
                    .completion(job, *task)
                    .await?
                    .ok_or_else(|| {
                        Error::BadRequest(format!(
                            "job {job}: completion of task {task} is missing"
                        ))
                    })?;
                frames.insert(*task, outputs);
            }
        }
        let mut decoded: HashMap<u64, Vec<&[u8]>> = HashMap::with_capacity(frames.len());
        for (task, outputs) in &frames {
            let values = frame::decode(outputs).map_err(|e| {
                Error::BadRequest(format!("job {job}: stored outputs of task {task}: {e}"))
            })?;
            decoded.insert(*task, values);
        }
        let values = parts
            .iter()
            .map(|part| match part {
                Part::Value(v) => Ok(v.as_slice()),
                Part::Stored { task, output } => {
                    decoded[task].get(*output).copied().ok_or_else(|| {
                        Error::BadRequest(format!(
                            "job {job}: stored outputs of task {task} have no output {output}"
                        ))
                    })
                }
            })
            .collect::<Result<Vec<_>>>()?;
        frame::encode(values).map_err(|e| Error::BadRequest(e.to_string()))
    }
}
