//! Pieces the backend queries share: the job columns, parsing stored values, mapping constraint
//! violations, and chunking completions into insert statements.

use std::str::FromStr;

use silk_ipc::FailureKind;

use super::{Completion, DbError, DbResult};
use silk_core::JobState;

pub(super) const JOB_COLUMNS: &str = "SELECT id, resource_group_id, state, graph_json, graph, inputs, outputs, \
     error_message, failure_kind, created_at_ms, ended_at_ms, task_count FROM jobs";

pub(super) fn parse_state(s: &str) -> DbResult<JobState> {
    JobState::from_str(s).map_err(|e| DbError::Corrupt(e.to_string()))
}

pub(super) fn parse_kind(s: &str) -> DbResult<FailureKind> {
    FailureKind::ALL
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| DbError::Corrupt(format!("unknown failure kind {s:?}")))
}

/// Maps unique and foreign-key violations to the caller's error.
pub(super) fn constraint(
    e: sqlx::Error,
    unique: impl FnOnce() -> DbError,
    fk: impl FnOnce() -> DbError,
) -> DbError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => return unique(),
            sqlx::error::ErrorKind::ForeignKeyViolation => return fk(),
            _ => {}
        }
    }
    DbError::Sql(e)
}

/// Most rows in one multi-row insert (4 bound values each); a power of two.
const MAX_ROWS_PER_INSERT: usize = 256;

/// Splits completions into runs that fit one insert statement: at most `max_bytes` of outputs
/// (a larger single row gets a statement of its own), and a power of two rows each, so the
/// insert has one of 9 shapes. Each shape is a prepared statement on its connection: were the
/// shapes unbounded, the driver's statement cache would evict one on most group commits and
/// close it on the server, a command MySQL does not answer — the next command then waited for
/// the server's delayed TCP acknowledgement (40 ms per commit, found on MariaDB over TCP).
pub(super) fn completion_chunks(
    completions: &[Completion],
    max_bytes: usize,
) -> impl Iterator<Item = &[Completion]> {
    let mut rest = completions;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut n = 0;
        while n < rest.len() && n < MAX_ROWS_PER_INSERT {
            bytes += rest[n].outputs.len();
            if n > 0 && bytes > max_bytes {
                break;
            }
            n += 1;
        }
        // The largest power of two not above n (n ≥ 1).
        let n = 1 << n.ilog2();
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use silk_tdl::JobId;

    use super::*;

    fn completion(task: u64, bytes: usize) -> Completion {
        Completion {
            job: JobId(1),
            task,
            outputs: std::sync::Arc::new(vec![0; bytes]),
        }
    }

    #[test]
    fn completions_are_chunked_by_rows_and_bytes() {
        let many: Vec<_> = (0..600).map(|i| completion(i, 8)).collect();
        let sizes: Vec<usize> = completion_chunks(&many, 4 << 20).map(<[_]>::len).collect();
        assert_eq!(sizes, [256, 256, 64, 16, 8]);
        let big = [
            completion(0, 1 << 20),
            completion(1, 2 << 20),
            completion(2, 2 << 20),
            completion(3, 9 << 20),
            completion(4, 1),
        ];
        let sizes: Vec<usize> = completion_chunks(&big, 4 << 20).map(<[_]>::len).collect();
        assert_eq!(
            sizes,
            [2, 1, 1, 1],
            "rows share a statement up to the byte cap; a larger row is alone"
        );
        assert_eq!(completion_chunks(&[], 4 << 20).count(), 0);
        let sizes: Vec<usize> = completion_chunks(&big, 1 << 20).map(<[_]>::len).collect();
        assert_eq!(sizes, [1, 1, 1, 1, 1], "the cap follows db_max_write_bytes");
    }

    /// Whatever the batch and its rows' sizes, inserts come in at most 9 shapes (1 to 256 rows,
    /// powers of two), and every row is written once, in order.
    #[test]
    fn completion_inserts_have_few_shapes() {
        let mut shapes = std::collections::BTreeSet::new();
        for len in 1..=700_u64 {
            let batch: Vec<_> = (0..len)
                .map(|i| completion(i, usize::try_from(i % 7 * 300).unwrap()))
                .collect();
            for max_bytes in [4 << 20, 8 << 10] {
                let chunks: Vec<&[Completion]> = completion_chunks(&batch, max_bytes).collect();
                let written: Vec<u64> = chunks
                    .iter()
                    .flat_map(|c| c.iter().map(|r| r.task))
                    .collect();
                assert_eq!(written, (0..len).collect::<Vec<_>>());
                shapes.extend(chunks.iter().map(|c| c.len()));
            }
        }
        assert_eq!(
            shapes.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64, 128, 256]
        );
    }
}
