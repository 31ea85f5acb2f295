using Streams.Coordination.Metadata;
using Streams.Testing;

namespace Streams.Controller.Tests;

/// <summary>A file metadata store in a temporary directory of its own, deleted with it.</summary>
internal sealed class TempMetadataStore : IAsyncDisposable
{
    private readonly TempDirectory _dir;

    public TempMetadataStore(string name)
    {
        _dir = new TempDirectory(name);
        Store = FileMetadataStore.Open(_dir.Path);
    }

    public FileMetadataStore Store { get; }

    public async ValueTask DisposeAsync()
    {
        await Store.DisposeAsync();
        _dir.Dispose();
    }
}
