//! The sandbox's own WASI preview 1 `poll_oneoff`, replacing wasmtime-wasi's. Epoch interruption
//! does not reach into host calls, and wasmtime-wasi sleeps for whatever a guest asks; this one
//! never sleeps past the task's hard timeout (it stops the guest with a timeout instead).
//!
//! It is complete for what a guest can see in this sandbox: clock subscriptions (relative or
//! absolute, realtime or monotonic), and descriptor subscriptions, which are ready at once:
//! stdin is closed (readable, at end of file), stdout and stderr always accept writes, and no
//! other descriptor exists (`EBADF`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use silk_tdl::abi;
use wasmtime::{Caller, Extern};

use crate::sandbox::{GuestState, Stopped, TimedOut};

const SUBSCRIPTION_BYTES: usize = 48;
const EVENT_BYTES: usize = 32;
const ERRNO_SUCCESS: u16 = 0;
const ERRNO_BADF: u16 = 8;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;
const EVENTTYPE_CLOCK: u8 = 0;
const EVENTTYPE_FD_READ: u8 = 1;
const EVENTTYPE_FD_WRITE: u8 = 2;
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;
const SUBCLOCKFLAGS_ABSTIME: u16 = 1;
const EVENTRWFLAGS_HANGUP: u16 = 1;
/// Bytes reported writable on stdout/stderr.
const WRITABLE_BYTES: u64 = 1 << 20;

/// A monotonic clock for the guest whose zero the host knows, so absolute monotonic deadlines
/// can be compared with the task's timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuestClock(pub(crate) Instant);

impl wasmtime_wasi::HostMonotonicClock for GuestClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

struct Event {
    userdata: [u8; 8],
    error: u16,
    kind: u8,
    nbytes: u64,
    flags: u16,
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

/// Longest a sleeping guest goes without checking whether the host asked it to stop.
const STOP_CHECK: Duration = Duration::from_millis(20);

/// Sleeps until `wake`, in slices of [`STOP_CHECK`]; false if `stop` was set first.
fn sleep_until(wake: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = wake.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(STOP_CHECK));
    }
}

/// `poll_oneoff(in, out, nsubscriptions, nevents_out) -> errno`.
pub(crate) fn poll_oneoff(
    mut caller: Caller<'_, GuestState>,
    subs: u32,
    events: u32,
    n: u32,
    nevents_out: u32,
) -> wasmtime::Result<i32> {
    let Some(Extern::Memory(memory)) = caller.get_export(abi::WASM_SYM_MEMORY) else {
        return Ok(ERRNO_FAULT);
    };
    if n == 0 {
        return Ok(ERRNO_INVAL);
    }
    let (deadline, clock_zero) = (caller.data().deadline, caller.data().clock_zero);
    let stop = caller.data().stop.clone();
    let count = usize::try_from(n).unwrap_or(usize::MAX);
    let start = usize::try_from(subs).unwrap_or(usize::MAX);
    let Some(input) = start
        .checked_add(count.saturating_mul(SUBSCRIPTION_BYTES))
        .and_then(|end| memory.data(&caller).get(start..end))
        .map(<[u8]>::to_vec)
    else {
        return Ok(ERRNO_FAULT);
    };

    // Descriptor subscriptions are ready at once; clocks wake at their time.
    let now = Instant::now();
    let mut ready = Vec::new();
    let mut clocks = Vec::new();
    for sub in input.chunks_exact(SUBSCRIPTION_BYTES) {
        let mut userdata = [0u8; 8];
        userdata.copy_from_slice(&sub[..8]);
        let fd = u32::from_le_bytes([sub[16], sub[17], sub[18], sub[19]]);
        let event = |kind, error, nbytes, flags| Event {
            userdata,
            error,
            kind,
            nbytes,
            flags,
        };
        match sub[8] {
            EVENTTYPE_CLOCK => {
                let timeout = u64_at(sub, 24);
                let absolute = u16::from_le_bytes([sub[40], sub[41]]) & SUBCLOCKFLAGS_ABSTIME != 0;
                let wait = match (absolute, fd) {
                    (false, _) => Duration::from_nanos(timeout),
                    (true, CLOCK_REALTIME) => {
                        let now_ns = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                        Duration::from_nanos(timeout.saturating_sub(now_ns))
                    }
                    (true, CLOCK_MONOTONIC) => {
                        (clock_zero + Duration::from_nanos(timeout)).saturating_duration_since(now)
                    }
                    (true, _) => {
                        ready.push(event(EVENTTYPE_CLOCK, 28, 0, 0));
                        continue;
                    }
                };
                // A wait of centuries is as good as a year here.
                let wake = now
                    .checked_add(wait)
                    .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
                clocks.push((wake, event(EVENTTYPE_CLOCK, ERRNO_SUCCESS, 0, 0)));
            }
            kind @ (EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE) => {
                ready.push(match (kind, fd) {
                    (EVENTTYPE_FD_READ, 0) => event(kind, ERRNO_SUCCESS, 0, EVENTRWFLAGS_HANGUP),
                    (EVENTTYPE_FD_WRITE, 1 | 2) => event(kind, ERRNO_SUCCESS, WRITABLE_BYTES, 0),
                    _ => event(kind, ERRNO_BADF, 0, 0),
                });
            }
            _ => return Ok(ERRNO_INVAL),
        }
    }

    if ready.is_empty() {
        let wake = clocks.iter().map(|(w, _)| *w).min().unwrap_or(now);
        if wake >= deadline {
            // Sleeping would outlast the task: sleep out what is left, then stop the guest as the
            // epoch callback would.
            if !sleep_until(deadline, &stop) {
                return Err(wasmtime::Error::new(Stopped));
            }
            return Err(wasmtime::Error::new(TimedOut));
        }
        if !sleep_until(wake, &stop) {
            return Err(wasmtime::Error::new(Stopped));
        }
    }
    let now = Instant::now();
    ready.extend(
        clocks
            .into_iter()
            .filter(|(w, _)| *w <= now)
            .map(|(_, e)| e),
    );

    let mut out = Vec::with_capacity(ready.len() * EVENT_BYTES);
    for e in &ready {
        let mut b = [0u8; EVENT_BYTES];
        b[..8].copy_from_slice(&e.userdata);
        b[8..10].copy_from_slice(&e.error.to_le_bytes());
        b[10] = e.kind;
        b[16..24].copy_from_slice(&e.nbytes.to_le_bytes());
        b[24..26].copy_from_slice(&e.flags.to_le_bytes());
        out.extend_from_slice(&b);
    }
    let nevents = u32::try_from(ready.len()).unwrap_or(u32::MAX);
    let data = memory.data_mut(&mut caller);
    let at = |p: u32, len: usize| {
        let p = usize::try_from(p).unwrap_or(usize::MAX);
        p.checked_add(len).map(|end| p..end)
    };
    let (Some(ev), Some(nv)) = (at(events, out.len()), at(nevents_out, 4)) else {
        return Ok(ERRNO_FAULT);
    };
    if ev.end > data.len() || nv.end > data.len() {
        return Ok(ERRNO_FAULT);
    }
    data[ev].copy_from_slice(&out);
    data[nv].copy_from_slice(&nevents.to_le_bytes());
    Ok(0)
}
