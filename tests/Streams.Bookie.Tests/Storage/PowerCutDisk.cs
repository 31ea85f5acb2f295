using FASTER.core;
using Streams.Bookie.Storage;

namespace Streams.Bookie.Tests.Storage;

/// <summary>
/// A journal disk that can lose power: on <see cref="Cut"/> everything not yet durable is lost, as a power failure
/// would lose it, and nothing is written afterwards. A SIGKILL keeps the page cache, so only a disk like this shows
/// an acknowledgement that came before the fsync covering it.
/// <para>
/// How the journal makes bytes durable. FASTER's device (ManagedLocalStorageDevice on Linux) opens its files with
/// O_SYNC (and O_DIRECT): a write is on disk when its completion callback runs, and FasterLog counts a commit as done
/// only once the writes of every page up to the commit record (FastCommitMode puts the commit record in the log) have
/// completed; its commit metadata files are written the same way and waited for. So "durable" is "the device's write
/// completed", and the model is:
/// </para>
/// <list type="bullet">
/// <item>A write FASTER issues is held back for a random moment (the "page cache") before it is handed to the real
/// O_SYNC device. A write still held back at the cut is dropped: its bytes never reach the file.</item>
/// <item>A write already handed to the real device is finished by the cut (the cut waits for it): it is on disk, as
/// it may be after a real power cut.</item>
/// <item>After the cut nothing reaches the disk, but the process does not know (a real one would be dead): dropped
/// and later writes report success, directory fsyncs and removals do nothing. So the store goes on as if nothing
/// happened until the test stops it; only acknowledgements seen before the cut count.</item>
/// <item>Directory entries: a file a write created is named durably only once its directory is fsynced
/// (<see cref="SyncDirectory"/> while the file exists). Files still unnamed at the cut are deleted, with everything in
/// them. Removals take effect at once (the harsher case: a removal that reaches the disk before the new commit
/// metadata naming the new begin would lose the journal). Nothing is removed after the cut.</item>
/// </list>
/// <para>
/// Real power cuts can also tear a write at sector granularity; this disk does not (FASTER's torn-tail handling is
/// not what it tests), and it trusts the real device's O_SYNC, which <c>The_journal_files_are_written_with_O_SYNC</c>
/// checks separately.
/// </para>
/// </summary>
internal sealed class PowerCutDisk(int seed, TimeSpan maxDelay) : IJournalDisk
{
    private readonly object _lock = new();
    private readonly Random _random = new(seed);
    private readonly HashSet<string> _unnamed = [];
    private readonly List<string> _syncs = [];
    private bool _off;
    private int _writing;

    public bool IsOff
    {
        get
        {
            lock (_lock)
            {
                return _off;
            }
        }
    }

    /// <summary>Files deleted by the cut because their directory had not been fsynced since they were created.</summary>
    public List<string> LostFiles { get; } = [];

    /// <summary>Writes issued before the cut but dropped by it (never reached the disk).</summary>
    public int DroppedWrites { get; private set; }

    /// <summary>Directories fsynced so far, in order.</summary>
    public IReadOnlyList<string> Syncs
    {
        get
        {
            lock (_lock)
            {
                return [.. _syncs];
            }
        }
    }

    /// <summary>Files created since their directory was last fsynced (and still there).</summary>
    public IReadOnlyList<string> UnnamedFiles
    {
        get
        {
            lock (_lock)
            {
                return [.. _unnamed.Where(File.Exists)];
            }
        }
    }

    public IDevice OpenLog(string path) => new PowerCutDevice(LocalJournalDisk.Instance.OpenLog(path), this);

    public INamedDeviceFactory CommitFiles() => new PowerCutDeviceFactory(LocalJournalDisk.Instance.CommitFiles(), this);

    public void SyncDirectory(string directory)
    {
        lock (_lock)
        {
            if (_off)
            {
                return;
            }

            _unnamed.RemoveWhere(path => Path.GetDirectoryName(path) == directory && File.Exists(path));
            _syncs.Add(directory);
        }

        LocalJournalDisk.Instance.SyncDirectory(directory);
    }

    /// <summary>Cuts the power: waits for the writes already on their way to the disk, then loses everything else.</summary>
    public void Cut()
    {
        lock (_lock)
        {
            _off = true;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (_writing > 0)
            {
                if (DateTime.UtcNow > deadline || !Monitor.Wait(_lock, TimeSpan.FromSeconds(10)))
                {
                    throw new TimeoutException($"{_writing} writes to the real device did not complete.");
                }
            }

            foreach (var path in _unnamed)
            {
                if (File.Exists(path))
                {
                    File.Delete(path);
                    LostFiles.Add(path);
                }
            }

            _unnamed.Clear();
        }
    }

    /// <summary>A write into <paramref name="path"/> was issued; false (it goes nowhere) if the power is off.</summary>
    internal bool TryAccept(string path, out TimeSpan delay)
    {
        lock (_lock)
        {
            delay = TimeSpan.FromTicks((long)(_random.NextDouble() * maxDelay.Ticks));
            if (_off)
            {
                return false;
            }

            if (!File.Exists(path))
            {
                _unnamed.Add(path); // the real device creates it when the write reaches it
            }

            return true;
        }
    }

    /// <summary>A held-back write goes to the real device now; false (it is dropped) if the power went off meanwhile.</summary>
    internal bool TryStartWrite()
    {
        lock (_lock)
        {
            if (_off)
            {
                DroppedWrites++;
                return false;
            }

            _writing++;
            return true;
        }
    }

    internal void EndWrite()
    {
        lock (_lock)
        {
            _writing--;
            Monitor.PulseAll(_lock);
        }
    }
}
