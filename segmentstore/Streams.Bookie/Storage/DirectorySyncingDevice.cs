using FASTER.core;

namespace Streams.Bookie.Storage;

/// <summary>
/// Makes the directory entries of a device's files durable. FASTER's device creates a segment file when it first
/// writes into it and deletes it when the log is truncated past it; its O_SYNC writes make a file's data and inode
/// durable but not the name in the directory, so after a power cut a segment created since the last directory fsync
/// could be gone with every acknowledged entry in it. Here the first write into each segment completes only after the
/// directory was fsynced (a commit covering it, and so any acknowledgement, waits for that), and removing a segment
/// fsyncs the directory afterwards.
/// <para>
/// Cost: one directory fsync per segment file per process (segments are 64 MiB by default), plus one per removal.
/// A failed fsync fails the write (FASTER then fails the commit and the bookie stops taking writes); a failed fsync
/// after a removal is ignored: at worst the removed file comes back after a crash, holding only records before the
/// journal's begin address, which are never read.
/// </para>
/// </summary>
internal sealed class DirectorySyncingDevice(IDevice inner, IJournalDisk disk) : DelegatingDevice(inner)
{
    /// <summary>The error code FASTER sees for a write whose directory could not be fsynced.</summary>
    private const uint SyncFailed = uint.MaxValue;

    private readonly string _directory = Path.GetDirectoryName(Path.GetFullPath(inner.FileName))!;
    private readonly HashSet<int> _synced = [];
    private readonly Lock _lock = new();

    public override void WriteAsync(IntPtr sourceAddress, int segmentId, ulong destinationAddress, uint numBytesToWrite, DeviceIOCompletionCallback callback, object context)
    {
        bool synced;
        lock (_lock)
        {
            synced = _synced.Contains(segmentId);
        }

        if (synced)
        {
            Inner.WriteAsync(sourceAddress, segmentId, destinationAddress, numBytesToWrite, callback, context);
            return;
        }

        Inner.WriteAsync(sourceAddress, segmentId, destinationAddress, numBytesToWrite, (errorCode, numBytes, ctx) =>
        {
            if (errorCode == 0 && !SyncAfterFirstWrite(segmentId))
            {
                errorCode = SyncFailed;
            }

            callback(errorCode, numBytes, ctx);
        }, context);
    }

    public override void RemoveSegmentAsync(int segment, AsyncCallback callback, IAsyncResult result) =>
        Inner.RemoveSegmentAsync(segment, r =>
        {
            SyncAfterRemoval(segment);
            callback(r);
        }, result);

    public override void RemoveSegment(int segment)
    {
        Inner.RemoveSegment(segment);
        SyncAfterRemoval(segment);
    }

    /// <summary>The segment's file exists (a write into it completed): make its name durable, once.</summary>
    private bool SyncAfterFirstWrite(int segment)
    {
        // Held while syncing: a concurrent first write into the same segment must not complete before the sync has.
        lock (_lock)
        {
            if (_synced.Contains(segment))
            {
                return true;
            }

            try
            {
                disk.SyncDirectory(_directory);
            }
            catch (IOException)
            {
                return false;
            }

            _synced.Add(segment);
            return true;
        }
    }

    private void SyncAfterRemoval(int segment)
    {
        lock (_lock)
        {
            _synced.Remove(segment);
        }

        try
        {
            disk.SyncDirectory(_directory);
        }
        catch (IOException)
        {
            // See the class comment: a removal that is forgotten costs space, never data.
        }
    }
}
