using System.Collections.Concurrent;
using Streams.Contracts.Controller;

namespace Streams.Client.Internal;

/// <summary>How connections to segment stores notice a server that went silent.</summary>
internal readonly record struct KeepAliveSettings(TimeSpan Interval, TimeSpan Timeout);

/// <summary>One shared connection per segment store; a closed or failed one is replaced on the next request.</summary>
internal sealed class ConnectionPool : IAsyncDisposable
{
    private readonly DataTransport _transport;
    private readonly KeepAliveSettings _keepAlive;
    private readonly ConcurrentDictionary<string, Lazy<Task<SegmentStoreConnection>>> _connections = new(StringComparer.Ordinal);

    public ConnectionPool(DataTransport transport, KeepAliveSettings keepAlive)
    {
        _transport = transport;
        _keepAlive = keepAlive;
    }

    public async Task<SegmentStoreConnection> GetAsync(SegmentEndpoint endpoint, CancellationToken cancellationToken)
    {
        var key = _transport == DataTransport.Raw ? $"{endpoint.Host}:{endpoint.DataPort}" : endpoint.GrpcUri;
        while (true)
        {
            var entry = _connections.GetOrAdd(key, _ => new Lazy<Task<SegmentStoreConnection>>(() => ConnectAsync(endpoint)));
            SegmentStoreConnection connection;
            try
            {
                connection = await entry.Value.WaitAsync(cancellationToken);
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested)
            {
                _connections.TryRemove(new KeyValuePair<string, Lazy<Task<SegmentStoreConnection>>>(key, entry));
                throw;
            }

            if (!connection.IsClosed)
            {
                return connection;
            }

            if (_connections.TryRemove(new KeyValuePair<string, Lazy<Task<SegmentStoreConnection>>>(key, entry)))
            {
                _ = connection.DisposeAsync().AsTask();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var entry in _connections.Values)
        {
            try
            {
                await (await entry.Value).DisposeAsync();
            }
            catch (Exception)
            {
                // A connection that never opened has nothing to close.
            }
        }

        _connections.Clear();
    }

    private async Task<SegmentStoreConnection> ConnectAsync(SegmentEndpoint endpoint) =>
        _transport == DataTransport.Raw
            // A store that does not answer the hello within the keep-alive timeout is as good as gone (frozen, most
            // likely, with its containers about to move): the writer asks the controller again instead of waiting.
            ? await RawSegmentStoreConnection.ConnectAsync(endpoint.Host, endpoint.DataPort, _keepAlive.Timeout, _keepAlive)
            : new GrpcSegmentStoreConnection(endpoint.GrpcUri, _keepAlive);
}
