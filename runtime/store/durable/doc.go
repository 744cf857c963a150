// Package durable keeps idrecon's runtime state on disk, so that nothing the
// daemon acknowledged (a SCIM user Entra was told was created, a membership
// change) is lost across restarts, crashes or power loss.
//
// A DB is a bbolt file in the data dir (FileName) and a write-ahead log
// beside it. It is the runtime store's store.Journal: the store's committer
// hands it each batch of changes, Commit appends them to the log as one frame
// and returns only after fdatasync, and only then does the store make the
// batch visible and answer its writers. One append and one fdatasync thus
// serve a whole batch (group commit), where a bbolt transaction costs two
// fsyncs and a write of every page it changes. A goroutine of the DB
// checkpoints the log into the bbolt file in the background. Open first
// replays whatever log a crash left, so the bbolt file alone holds the state:
// at start-up LoadInto fills a fresh store from it and refuses to start
// (ErrCorrupt) on a damaged file instead of serving an empty directory to
// Entra. Users or groups whose names fold equal, which an older idrecon
// could write, are not damage: LoadInto renames all but one (see Repair).
//
// Records are versioned and checksummed (see internal/record), and the file
// carries a format version, so a newer idrecon reads an older data dir. Only
// the store's known tables are persisted; a table added to the store schema
// without a bucket here stays in memory (Commit logs it once).
//
// # State file
//
// The bbolt file of format 3 (FormatVersion) has a bucket per persisted
// table, each value a record (internal/record):
//
//	idrecon      "format": the format version in decimal; "logApplied":
//	             the last log segment applied, uint64
//	meta         Meta records, under their key
//	resources    Resource records, under uvarint len(kind), kind, name
//	groups       Group records, under the group id
//	users        User records, under the user id
//	members      a header record per group with a members row (its
//	             membership version and time), under the group id
//	memberLists  the group's member ids: sorted, cut into chunks, each a
//	             MemberChunk record under uvarint len(group), group, the
//	             chunk's first id
//
// A MemberChunk record's body is the group id and the chunk's ids: a
// uvarint count, then each id length-prefixed, strictly ascending. A row's
// members are thus a header and the chunks under its group's key prefix,
// which hold its ids in key order without overlap; a group with no members
// has a header and no chunk. LoadInto refuses (ErrCorrupt) a chunk without
// a header, chunks that overlap, and an id that is no loaded user or group. Chunks hold about 128 ids (chunkIDs):
// the checkpoint rewrites only the chunks a change falls in, splits one
// that grows past twice that and merges one that shrinks under half of it
// with the next, so every chunk but a group's last holds 64 to 256 ids.
// Known cost: ids are random, so a change of k ids to a group of n members
// rewrites up to min(k, n/128) chunks of at most ~10 KB each (100 ids added
// to a group of 100,000 with 36-byte ids: about 90 chunks, under 1 MB, not
// the 3.7 MB list);
// changes a segment holds for one group are merged and written once.
//
// Format 1 kept a Membership record per direct membership (bucket
// memberships, key uvarint len(group), group, member) and no headers;
// format 2 added the headers. Open migrates such a file in one bbolt
// transaction: the membership records become chunks, a group without a
// header gets one at version 0, the memberships bucket goes.
//
// # Write-ahead log
//
// The log is a series of segment files, FileName.wal.N with N a 16-digit hex
// number that only grows. Commit appends to the newest segment; once that
// reaches Options.SegmentBytes, the next batch starts a new one and the
// checkpointer applies the full one to the bbolt file in one transaction,
// which also records N as the last segment applied, and then removes it. When
// two full segments are still waiting, Commit waits for the checkpointer (or
// fails while checkpoints fail), which bounds the log and the replay after a
// crash. Close checkpoints everything and removes the log. A segment is
//
//	header:  "idrecon-wal\n", uint32 FormatVersion, uint64 N,
//	         CRC-32C of the preceding bytes
//	frames:  one per batch: uint32 payload length, CRC-32C of the payload,
//	         CRC-32C of the preceding 8 bytes, payload
//	payload: ops, each: uvarint length and table, uvarint length and key,
//	         uvarint length+1 and value (0, and no value, for a delete);
//	         or, in a segment's first frame only, a cut: a zero byte (no
//	         table has an empty name), uint64 N-1 and uint64 the number of
//	         bytes of segment N-1 that hold its synced frames
//	zeros:   to the end of the file
//
// The zeros are written a megabyte ahead of the frames, so that syncing a
// frame does not also change the file's size: that would make fdatasync
// commit the file system's journal for every batch. On a disk without room
// for them a frame is written without them: a full disk refuses only the
// batches it has no room for.
// with integers big endian and CRC-32C the Castagnoli CRC. An op puts a
// record (internal/record) under its key in its table's bucket, or deletes
// the key: the log holds the bucket writes a batch makes, as batchOps decides
// them, not the store's objects. Ops on the members table are the exception
// from format 3 on: a members row change is one op under the group id, a
// delete when the row goes (its header and every chunk), else a MemberDelta
// record, whose body is the group id, the row's new version (uvarint) and
// time (varint seconds, uvarint nanoseconds), the ids added and the ids
// removed (each list a uvarint count and length-prefixed ids, sorted), so a
// hundred members added to a big group log a hundred ids, not the list. A checkpoint applies the other
// ops last per key, in key order; for each group the segment touches it
// reads the group's chunks once, applies the segment's deltas in log order
// (a delete empties the list, then later deltas apply to the empty list),
// and writes the header and the changed chunks once. Ids are a set, so an
// add or remove decides only its id, and applying a segment twice leaves
// what applying it once does. In format 1 and 2 segments the members ops
// are plain puts and deletes of header records and the member lists are
// Membership record puts and deletes in the memberships bucket.
//
// An append whose write or fdatasync fails is undone: the segment is cut
// back to its synced frames and synced again, and Commit fails. Should the
// undo fail too, the segment may keep the failed batch, which the store does
// not hold and the writes after it were computed without: the segment is
// sealed, and the next one is created with a cut, synced with its header,
// before any later batch is appended, so replay applies the broken segment
// up to the cut and never the failed batch under later ones. While the cut
// cannot be written, every Commit fails (store.ErrUnavailable, like every
// failure of the log's disk). A failed batch can thus come back at the next
// start (after a crash, or a Close whose checkpoint failed) only as the
// last write of the log, when nothing was acknowledged after it.
//
// Replay checks every segment after the last one applied, newest first,
// then applies them in order and removes them. A segment followed by one
// that starts with its cut is applied up to the cut (a cut of a segment
// applied already is moot). In the last segment, a damaged frame with no
// intact frame after it is the batch being written when the process died,
// never acknowledged: it is dropped. Frames are read one after another from
// the header, so bytes a client wrote (a userName can hold an intact frame)
// are only ever a payload: when looking for an intact frame after a damaged
// one, a damaged frame whose header is intact is skipped whole. Any other
// damage, a cut that does not end the frames of the segment before it, a
// missing segment, or a log without its state file is ErrCorrupt. A
// segment numbered up to the last applied one was applied before the
// process could remove it; it is removed unread, as applying it again over later segments would bring back
// older values. Replay runs before Open migrates an older file: a segment
// holds ops in the format of the file it was written for, the format its
// header records, so a newer idrecon replays the log of an older one and
// then migrates. An idrecon older than the log does not read it: stop the
// daemon cleanly before downgrading.
//
// Certificate private keys are never written to disk: a loaded
// spec.Certificate has a nil PrivateKey, and it is resolved again from its
// PrivateKeyFrom reference when the reconciler next writes the certificate.
//
// WriteBackup streams a consistent snapshot of a running store in a
// self-describing format; Restore installs such a backup as a new state file,
// offline and atomically, and removes the log of the state it replaces after
// the rename: the new file records that log as applied, so a restore that
// fails before the rename leaves the old state whole, and one that crashes
// after it never replays the old log onto the new file. Restore holds a
// flock on the data dir itself from start to end, so a second restore into
// it fails (ErrLocked) instead of writing, renaming and removing beside the
// first. Its temporary file is FileName.restore- and random digits (with the
// log verifying it starts, FileName.restore-digits.wal.N): a restore killed
// halfway leaves them, and the next restore, or the next Open while no
// restore holds the data dir, removes them. A
// backup names the state format of its buckets and records (backup.go): one
// of format 3 holds member chunks; Restore writes an older one into a file
// of its format and migrates that as Open does.
//
// Only the daemon's wiring knows this package: the store sees nothing but its
// small Journal interface, start-up calls LoadInto, and the admin API and CLI
// call WriteBackup and Restore. A replicated backend (etcd, Raft) slots in
// later by implementing store.Journal and a loader of its own, without
// touching the SCIM, SAML or admin code.
package durable
