using FASTER.core;
using Streams.Common.Storage;

namespace Streams.Bookie.Storage;

/// <summary>
/// The local file system through FASTER's own devices. They open files with <c>FileOptions.WriteThrough</c> (O_SYNC on
/// Linux) and, by default, unbuffered (O_DIRECT): a completed write is on disk, data and inode, but the directory entry
/// of a file the device just created is not, which is what <see cref="SyncDirectory"/> is for.
/// </summary>
internal sealed class LocalJournalDisk : IJournalDisk
{
    public static LocalJournalDisk Instance { get; } = new();

    public IDevice OpenLog(string path) => Devices.CreateLogDevice(path, preallocateFile: false);

    public INamedDeviceFactory CommitFiles() => new LocalStorageNamedDeviceFactory();

    public void SyncDirectory(string directory) => DurableFiles.FsyncDirectory(directory);
}
