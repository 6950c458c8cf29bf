//! Start-up: what a previous run (or a crash) left in the spool directory becomes a consistent
//! state — without reading more than the last segment, so start-up takes the same time whatever
//! the backlog.

use super::*;
use std::io::Seek as _;

fn lock_dir(dir: &Path, name: &str) -> Result<File, SpoolError> {
    let path = dir.join("lock");
    let io_err = |what, source| SpoolError::Io {
        exporter: name.to_string(),
        what,
        path: path.display().to_string(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_err("create", e))?;
    // A spool closed a moment ago in this process may still be finishing its last cursor write.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(SpoolError::Locked {
                    exporter: name.to_string(),
                    path: dir.display().to_string(),
                })
            }
            Err(e) => return Err(io_err("lock", e.into())),
        }
    }
}

/// Start-up: lists the segments, reads the cursor, removes what a crash left behind, cuts a torn
/// tail off the last segment, and opens a fresh segment to append to. Reads no segment but the
/// last, so it takes the same time whatever the backlog.
pub(super) fn recover(
    cfg: SpoolConfig,
    metrics: &Registry,
) -> Result<(Core, Active, Recovered), SpoolError> {
    let name = cfg.name.to_string();
    let dir = cfg.dir.clone();
    let io_err = |what, path: &Path, source| SpoolError::Io {
        exporter: name.clone(),
        what,
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, e))?;
    let lock = lock_dir(&dir, &name)?;
    let counters = Counters::new(metrics, &name);
    let mut recovered = Recovered::default();
    let _ = std::fs::remove_file(dir.join(cursor::TEMP));
    let _ = std::fs::remove_file(dir.join(SPARE));
    let mut segments = segment::list(&dir).map_err(|e| io_err("list", &dir, e))?;

    // Empty segments hold nothing (an agent that started and stopped without data).
    for (id, _) in segments.clone().iter().filter(|(_, len)| **len == 0) {
        let _ = std::fs::remove_file(segment::path(&dir, *id));
        segments.remove(id);
    }

    let loaded = match cursor::load(&dir) {
        Ok(Some(p)) => Some(p),
        Ok(None) => {
            if !segments.is_empty() {
                recovered.cursor = CursorFound::Missing;
                warn!(exporter = %name, dir = %dir.display(), "spool cursor missing: sending everything on disk again (duplicates possible)");
            }
            None
        }
        Err(e) => {
            recovered.cursor = CursorFound::Damaged;
            counters.cursor_errors.inc();
            warn!(exporter = %name, error = %e, "spool cursor unusable: sending everything on disk again (duplicates possible)");
            None
        }
    };
    let first = segments.keys().next().copied();
    let last = segments.keys().next_back().copied();
    let mut cursor = match (loaded, first, last) {
        (_, None, _) | (_, _, None) => Pos::default(),
        (None, Some(f), _) => Pos {
            segment: f,
            offset: 0,
        },
        (Some(p), Some(f), Some(l)) => {
            if p.segment > l {
                recovered.cursor = CursorFound::Damaged;
                warn!(exporter = %name, cursor = %p, "spool cursor points past the last segment: sending everything on disk again");
                Pos {
                    segment: f,
                    offset: 0,
                }
            } else if p.segment < f || !segments.contains_key(&p.segment) {
                // Its segment is gone (emptied, or deleted once exported): the next one starts.
                let next = segments.range(p.segment..).next().map_or(f, |(id, _)| *id);
                Pos {
                    segment: next,
                    offset: 0,
                }
            } else {
                p
            }
        }
    };

    // Segments before the cursor were exported; a crash between the cursor write and their
    // deletion leaves them behind.
    for id in segments
        .range(..cursor.segment)
        .map(|(id, _)| *id)
        .collect::<Vec<_>>()
    {
        let _ = std::fs::remove_file(segment::path(&dir, id));
        segments.remove(&id);
    }

    // A torn tail can only be at the end of the last segment written.
    if let Some((&id, &len)) = segments.iter().next_back() {
        let path = segment::path(&dir, id);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err("open", &path, e))?;
        let read = |e| io_err("read", &path, e);
        if let Some(good) = segment::torn_tail(&f, id, len).map_err(read)? {
            // Past the torn write (if any), a reused file holds its old content: frames of an
            // earlier segment, whole up to the end of the file.
            let stale = segment::stale_from(&f, good, len).map_err(read)?;
            f.set_len(good).map_err(|e| io_err("truncate", &path, e))?;
            let _ = f.sync_all();
            let cut = stale - good;
            if cut > 0 {
                counters.torn_tail_bytes.add(cut);
                recovered.torn_tail_bytes = cut;
                warn!(exporter = %name, file = %path.display(), offset = good, bytes = cut, "cut a torn record from the end of the spool (it was never acknowledged)");
            }
            if stale < len {
                info!(exporter = %name, file = %path.display(), offset = stale, bytes = len - stale, "cut the old content of a reused segment file");
            }
            if good == 0 {
                let _ = std::fs::remove_file(&path);
                segments.remove(&id);
            } else {
                segments.insert(id, good);
            }
        }
    }
    if let Some(len) = segments.get(&cursor.segment) {
        cursor.offset = cursor.offset.min(*len);
    }

    let new_id = segments
        .keys()
        .next_back()
        .copied()
        .max(loaded.map(|p| p.segment))
        .map_or(0, |id| id + 1);
    if segments.is_empty() {
        cursor = Pos {
            segment: new_id,
            offset: 0,
        };
    }
    let (active_id, file, active_len) = match start_segment(&dir, new_id, cfg.fsync) {
        Ok(file) => (new_id, file, 0),
        Err(e) => {
            // A full disk may refuse even an empty file: append to the last segment instead
            // rather than refuse to start.
            let last = segments.iter().next_back().map(|(id, len)| (*id, *len));
            let reopened = last.and_then(|(id, len)| {
                let mut f = OpenOptions::new()
                    .write(true)
                    .open(segment::path(&dir, id))
                    .ok()?;
                f.seek(io::SeekFrom::Start(len)).ok()?;
                Some((id, f, len))
            });
            match reopened {
                Some(r) => {
                    warn!(exporter = %name, dir = %dir.display(), error = %e, "cannot start a new segment; appending to the last one");
                    r
                }
                None => return Err(io_err("create", &segment::path(&dir, new_id), e)),
            }
        }
    };
    segments.insert(active_id, active_len);

    let labels = [("exporter", &*name)];
    let used_gauge = metrics.gauge(
        "sonde_buffer_bytes",
        "Encoded bytes held by an exporter's buffer (disk: from the cursor to the end of the log).",
        &labels,
    );
    let items_gauge = metrics.gauge(
        "sonde_buffer_items",
        "Items held by an exporter's buffer (disk: from the cursor to the end of the log).",
        &labels,
    );
    metrics
        .gauge(
            "sonde_buffer_max_bytes",
            "Configured size limit of an exporter's buffer.",
            &labels,
        )
        .set(i64::try_from(cfg.max_size).unwrap_or(i64::MAX));
    let segments_gauge = metrics.gauge(
        "sonde_spool_segments",
        "Segment files of an exporter's disk buffer.",
        &labels,
    );
    segments_gauge.set(segments.len() as i64);
    let mut st = State {
        segments,
        active: active_id,
        read: cursor,
        cursor,
        persisted: loaded.filter(|p| *p == cursor),
        inflight: VecDeque::new(),
        front: 0,
        used: 0,
        used_gauge,
        items: 0,
        items_gauge,
        backlog_pending: false,
        closed: false,
        write_failed: None,
        recent: VecDeque::new(),
        recent_bytes: 0,
        spare: false,
        // Only segments this run starts hold nothing but frames bound to them.
        recycle_floor: if active_len == 0 {
            active_id
        } else {
            active_id + 1
        },
        empty_since: None,
    };
    st.normalize_read();
    st.cursor = st.read;
    let backlog = st.dist(st.cursor, st.end());
    st.set_used(backlog);
    recovered.segments = st.segments.range(st.cursor.segment..st.active).count();
    recovered.backlog_bytes = backlog;
    info!(exporter = %name, dir = %dir.display(), segments = recovered.segments, backlog_bytes = backlog, cursor = %st.cursor, "disk buffer opened");
    let core = Core {
        name: cfg.name.clone(),
        dir,
        fsync: cfg.fsync,
        compression: cfg.compression,
        segment_size: cfg.segment_size.max(record::HEADER_LEN),
        max_size: cfg.max_size,
        state: Mutex::new(st),
        space: Notify::new(),
        data: Notify::new(),
        counters,
        gauges: Gauges {
            segments: segments_gauge,
        },
        persist_lock: Mutex::new(()),
        warn_full: LogLimit::default(),
        warn_cursor: LogLimit::default(),
        _lock: lock,
    };
    let active = Active {
        id: active_id,
        file,
        len: active_len,
        sealed: false,
        reused: false,
    };
    Ok((core, active, recovered))
}

/// Creates segment `id` to append to, durably (the directory entry too, unless `fsync = never`).
/// A file left by an earlier attempt that failed after creating it holds nothing and is replaced.
pub(super) fn start_segment(dir: &Path, id: u64, fsync: Fsync) -> io::Result<File> {
    let path = segment::path(dir, id);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    // Not O_APPEND: a reused segment file is overwritten from its start, so every segment is
    // written at the file position, which the writer keeps at the end of its data.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    if fsync != Fsync::Never {
        sync_dir(dir)?;
    }
    Ok(file)
}
