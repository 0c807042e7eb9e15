//! What is of record survives a restart, in SQLite: completed counters, the allow-list, users with their
//! passkeys and totals. Peer lists are not kept: clients re-announce within an interval.
//!
//! SQLite was chosen over a snapshot file because the directory (a later issue) already needs it, a save
//! is one transaction (a crash mid-save leaves the previous state), and the data can be inspected and
//! edited with standard tools. The schema is versioned with `PRAGMA user_version`.

use std::path::Path;

use rusqlite::{params, Connection};
use tracker_core::{AllowEntry, CompletedRecord, Passkey, Records, UserId, UserRecord};
use tracker_proto::InfoHashV1;

/// The schema version this code writes.
const SCHEMA_VERSION: i64 = 1;

/// A database problem.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// SQLite failed.
    #[error("tracker database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file was written by a newer bitswarm.
    #[error(
        "tracker database: schema version {0} is newer than this bitswarm understands ({SCHEMA_VERSION})"
    )]
    NewerSchema(i64),
    /// A row does not hold what it should.
    #[error("tracker database: bad row in {table}: {what}")]
    BadRow {
        /// The table.
        table: &'static str,
        /// What is wrong.
        what: String,
    },
}

/// Open (creating if needed) and migrate the database.
pub fn open(path: &Path) -> Result<Connection, PersistError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(PersistError::NewerSchema(version));
    }
    if version < 1 {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS completed (info_hash BLOB PRIMARY KEY, completed INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS allow_list (info_hash BLOB PRIMARY KEY, size INTEGER, name TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, passkey BLOB NOT NULL UNIQUE,
                                               uploaded INTEGER NOT NULL, downloaded INTEGER NOT NULL);
             PRAGMA user_version = 1;",
        )?;
    }
    Ok(conn)
}

/// Replace what is saved with `records`, in one transaction.
pub fn save(conn: &mut Connection, records: &Records) -> Result<(), PersistError> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM completed", [])?;
    tx.execute("DELETE FROM allow_list", [])?;
    tx.execute("DELETE FROM users", [])?;
    {
        let mut s = tx.prepare("INSERT INTO completed (info_hash, completed) VALUES (?1, ?2)")?;
        for c in &records.completed {
            s.execute(params![&c.info_hash.0[..], c.completed])?;
        }
        let mut s = tx.prepare("INSERT INTO allow_list (info_hash, size, name) VALUES (?1, ?2, ?3)")?;
        for a in &records.allow_list {
            s.execute(params![&a.info_hash.0[..], a.size.map(|v| v as i64), a.name])?;
        }
        let mut s =
            tx.prepare("INSERT INTO users (id, passkey, uploaded, downloaded) VALUES (?1, ?2, ?3, ?4)")?;
        for u in &records.users {
            s.execute(params![
                u.id.0,
                &u.passkey.0[..],
                u.uploaded as i64,
                u.downloaded as i64
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn hash(table: &'static str, b: Vec<u8>) -> Result<InfoHashV1, PersistError> {
    <[u8; 20]>::try_from(b.as_slice())
        .map(InfoHashV1)
        .map_err(|_| PersistError::BadRow {
            table,
            what: format!("info_hash of {} bytes", b.len()),
        })
}

/// Read everything saved.
pub fn load(conn: &Connection) -> Result<Records, PersistError> {
    let mut records = Records::default();
    let mut s = conn.prepare("SELECT info_hash, completed FROM completed ORDER BY info_hash")?;
    let rows = s.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, u32>(1)?)))?;
    for row in rows {
        let (h, completed) = row?;
        records.completed.push(CompletedRecord {
            info_hash: hash("completed", h)?,
            completed,
        });
    }
    let mut s = conn.prepare("SELECT info_hash, size, name FROM allow_list ORDER BY info_hash")?;
    let rows = s.query_map([], |r| {
        Ok((
            r.get::<_, Vec<u8>>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (h, size, name) = row?;
        let size = size.map(|v| u64::try_from(v).unwrap_or(0));
        records.allow_list.push(AllowEntry {
            info_hash: hash("allow_list", h)?,
            size,
            name,
        });
    }
    let mut s = conn.prepare("SELECT id, passkey, uploaded, downloaded FROM users ORDER BY id")?;
    let rows = s.query_map([], |r| {
        Ok((
            r.get::<_, u32>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (id, pk, up, down) = row?;
        let passkey = <[u8; 16]>::try_from(pk.as_slice())
            .map(Passkey)
            .map_err(|_| PersistError::BadRow {
                table: "users",
                what: format!("passkey of {} bytes", pk.len()),
            })?;
        records.users.push(UserRecord {
            id: UserId(id),
            passkey,
            uploaded: u64::try_from(up).unwrap_or(0),
            downloaded: u64::try_from(down).unwrap_or(0),
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_gives_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let records = Records {
            completed: vec![CompletedRecord {
                info_hash: tracker_proto::InfoHashV1([1; 20]),
                completed: 7,
            }],
            allow_list: vec![AllowEntry {
                info_hash: tracker_proto::InfoHashV1([2; 20]),
                size: Some(99),
                name: "x".into(),
            }],
            users: vec![UserRecord {
                id: UserId(3),
                passkey: Passkey([4; 16]),
                uploaded: 10,
                downloaded: 20,
            }],
        };
        let mut conn = open(&path).unwrap();
        save(&mut conn, &records).unwrap();
        save(&mut conn, &records).unwrap();
        drop(conn);
        let conn = open(&path).unwrap();
        assert_eq!(load(&conn).unwrap(), records);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open(&path).unwrap();
        conn.pragma_update(None, "user_version", 9).unwrap();
        drop(conn);
        assert!(matches!(open(&path), Err(PersistError::NewerSchema(9))));
    }
}
