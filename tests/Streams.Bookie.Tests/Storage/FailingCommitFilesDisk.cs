using FASTER.core;
using Streams.Bookie.Storage;

namespace Streams.Bookie.Tests.Storage;

/// <summary>The local disk, except that writes of FASTER's commit metadata files fail (EIO) while <see cref="Failing"/>.</summary>
internal sealed class FailingCommitFilesDisk : IJournalDisk
{
    public volatile bool Failing;

    public int FailedWrites;

    public IDevice OpenLog(string path) => LocalJournalDisk.Instance.OpenLog(path);

    public INamedDeviceFactory CommitFiles() => new Factory(LocalJournalDisk.Instance.CommitFiles(), this);

    public void SyncDirectory(string directory) => LocalJournalDisk.Instance.SyncDirectory(directory);

    private sealed class Factory(INamedDeviceFactory real, FailingCommitFilesDisk disk) : INamedDeviceFactory
    {
        public void Initialize(string baseName) => real.Initialize(baseName);

        public IDevice Get(FileDescriptor fileInfo) => new Device(real.Get(fileInfo), disk);

        public void Delete(FileDescriptor fileInfo) => real.Delete(fileInfo);

        public IEnumerable<FileDescriptor> ListContents(string path) => real.ListContents(path);
    }

    private sealed class Device(IDevice real, FailingCommitFilesDisk disk) : DelegatingDevice(real)
    {
        public override void WriteAsync(IntPtr sourceAddress, int segmentId, ulong destinationAddress, uint numBytesToWrite, DeviceIOCompletionCallback callback, object context)
        {
            if (disk.Failing)
            {
                Interlocked.Increment(ref disk.FailedWrites);
                callback(5, 0, context); // EIO
                return;
            }

            base.WriteAsync(sourceAddress, segmentId, destinationAddress, numBytesToWrite, callback, context);
        }
    }
}
