using FASTER.core;

namespace Streams.Bookie.Storage;

/// <summary>
/// FASTER's commit metadata files with durable directory entries. FASTER writes each metadata commit into a new file
/// (commit.N) and deletes the previous one; if the new name were lost in a power cut after the old file's removal
/// reached the disk, recovery would find no metadata at all and start an empty journal. Each file's first write
/// completes only after its directory was fsynced (<see cref="DirectorySyncingDevice"/>), and a removal is followed
/// by one. Errors are recorded in the journal's <see cref="JournalFault"/> (FASTER ignores a failed metadata write),
/// and no file is removed once one happened.
/// </summary>
internal sealed class DirectorySyncingDeviceFactory(INamedDeviceFactory inner, IJournalDisk disk, JournalFault fault) : INamedDeviceFactory
{
    private string _baseName = "";

    public void Initialize(string baseName)
    {
        _baseName = baseName;
        inner.Initialize(baseName);
    }

    public IDevice Get(FileDescriptor fileInfo) => new FaultRecordingDevice(new DirectorySyncingDevice(inner.Get(fileInfo), disk), fault);

    public void Delete(FileDescriptor fileInfo)
    {
        if (fault.Error is not null)
        {
            return;
        }

        inner.Delete(fileInfo);
        var directory = Path.Combine(_baseName, fileInfo.directoryName ?? "");
        try
        {
            disk.SyncDirectory(fileInfo.fileName is null ? Path.GetDirectoryName(Path.GetFullPath(directory))! : directory);
        }
        catch (IOException)
        {
            // A removal that is forgotten leaves an older commit file, which recovery passes over for the newest.
        }
    }

    public IEnumerable<FileDescriptor> ListContents(string path) => inner.ListContents(path);
}
