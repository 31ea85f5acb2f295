using FASTER.core;

namespace Streams.Bookie.Tests.Storage;

/// <summary>FASTER's commit metadata files behind a <see cref="PowerCutDisk"/>.</summary>
internal sealed class PowerCutDeviceFactory(INamedDeviceFactory real, PowerCutDisk disk) : INamedDeviceFactory
{
    public void Initialize(string baseName) => real.Initialize(baseName);

    public IDevice Get(FileDescriptor fileInfo) => new PowerCutDevice(real.Get(fileInfo), disk);

    public void Delete(FileDescriptor fileInfo)
    {
        if (!disk.IsOff)
        {
            real.Delete(fileInfo);
        }
    }

    public IEnumerable<FileDescriptor> ListContents(string path) => real.ListContents(path);
}
