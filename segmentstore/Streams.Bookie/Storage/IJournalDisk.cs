using FASTER.core;

namespace Streams.Bookie.Storage;

/// <summary>
/// The file system under the journal: the devices FASTER writes the journal and its commit metadata through, and the
/// directory fsync that makes file creations and removals durable. <see cref="LocalJournalDisk"/> is the real one;
/// the bookie's power-cut tests put a disk here that forgets whatever was not made durable.
/// </summary>
public interface IJournalDisk
{
    /// <summary>The device that keeps the journal in files named <paramref name="path"/>.0, .1, ...</summary>
    IDevice OpenLog(string path);

    /// <summary>Devices for FASTER's commit metadata files (one small file per metadata commit).</summary>
    INamedDeviceFactory CommitFiles();

    /// <summary>Makes the entries of <paramref name="directory"/> (files created or removed in it) durable. Throws <see cref="IOException"/> if it cannot.</summary>
    void SyncDirectory(string directory);
}
