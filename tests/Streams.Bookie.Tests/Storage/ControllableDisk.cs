using FASTER.core;
using Streams.Bookie.Storage;

namespace Streams.Bookie.Tests.Storage;

/// <summary>
/// The local disk, except that the journal's writes can be held back (a slow disk: they complete when released) and
/// its reads can fail with EIO.
/// </summary>
internal sealed class ControllableDisk : IJournalDisk
{
    private readonly Lock _lock = new();
    private readonly List<Action> _held = [];
    private bool _holding;

    public volatile bool FailReads;

    public int FailedReads;

    public IDevice OpenLog(string path) => new Device(LocalJournalDisk.Instance.OpenLog(path), this);

    public INamedDeviceFactory CommitFiles() => LocalJournalDisk.Instance.CommitFiles();

    public void SyncDirectory(string directory) => LocalJournalDisk.Instance.SyncDirectory(directory);

    /// <summary>From now on, the journal's writes wait until <see cref="ReleaseWrites"/>.</summary>
    public void HoldWrites()
    {
        lock (_lock)
        {
            _holding = true;
        }
    }

    /// <summary>Lets the held writes go, and the later ones through.</summary>
    public void ReleaseWrites()
    {
        List<Action> held;
        lock (_lock)
        {
            _holding = false;
            held = [.. _held];
            _held.Clear();
        }

        foreach (var write in held)
        {
            write();
        }
    }

    private bool TryHold(Action write)
    {
        lock (_lock)
        {
            if (_holding)
            {
                _held.Add(write);
            }

            return _holding;
        }
    }

    private sealed class Device(IDevice real, ControllableDisk disk) : DelegatingDevice(real)
    {
        public override void WriteAsync(IntPtr sourceAddress, int segmentId, ulong destinationAddress, uint numBytesToWrite, DeviceIOCompletionCallback callback, object context)
        {
            void Write() => base.WriteAsync(sourceAddress, segmentId, destinationAddress, numBytesToWrite, callback, context);
            if (!disk.TryHold(Write))
            {
                Write();
            }
        }

        public override void ReadAsync(int segmentId, ulong sourceAddress, IntPtr destinationAddress, uint readLength, DeviceIOCompletionCallback callback, object context)
        {
            if (disk.FailReads)
            {
                Interlocked.Increment(ref disk.FailedReads);
                callback(5, 0, context); // EIO
                return;
            }

            base.ReadAsync(segmentId, sourceAddress, destinationAddress, readLength, callback, context);
        }
    }
}
