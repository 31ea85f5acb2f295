using System.Text;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Streams.Common.Grpc;
using Streams.Contracts.Controller;
using Streams.Coordination.Cluster;
using Streams.Coordination.Metadata;
using Streams.SegmentStore;
using ControllerClient = Streams.Contracts.Controller.Controller.ControllerClient;

namespace Streams.Hosting;

/// <summary>
/// A cluster segment store's load reports, sent over gRPC (ReportLoad) to the leading controller. The leader is read
/// from its election node (<see cref="ClusterPaths.ControllerLeader"/>, whose first line is the controller's gRPC
/// address) and kept until a report is refused (accepted = false: that controller no longer leads) or fails; the next
/// report then reads the node again. With no leader the report is dropped: the reporter sends it again at its next tick.
/// </summary>
internal sealed class ControllerLoadSink(IMetadataStore store, ILogger logger) : ISegmentLoadSink, IDisposable
{
    /// <summary>A report is small and the controller only records it: a slow answer means a stuck controller.</summary>
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Serializes looking the leader up (a metadata read), so reports that find none do not all read it.</summary>
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>Guards <see cref="_leader"/>: held for moments, never across an await, so forgetting never blocks.</summary>
    private readonly object _sync = new();
    private (string Address, GrpcChannel Channel, ControllerClient Client)? _leader;

    public async Task<bool> ReportAsync(LoadReport report, CancellationToken cancellationToken)
    {
        var leader = await LeaderAsync(cancellationToken);
        if (leader is null)
        {
            return false;
        }

        try
        {
            var reply = await leader.Value.Client.ReportLoadAsync(report, GrpcChannels.Deadline(CallTimeout, cancellationToken));
            if (!reply.Accepted)
            {
                logger.LogInformation("Controller {Controller} refused a load report (it does not lead); looking for the leader again.", leader.Value.Address);
                Forget(leader.Value.Address);
            }

            return reply.Accepted;
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            Forget(leader.Value.Address);
            throw;
        }
    }

    public void Dispose()
    {
        lock (_sync)
        {
            _leader?.Channel.Dispose();
        }

        _gate.Dispose();
    }

    /// <summary>The leading controller's gRPC address, as its election node holds it (candidate, newline, instance id).</summary>
    internal static string? AddressOf(byte[] node)
    {
        var text = Encoding.UTF8.GetString(node);
        var line = text.Split('\n', 2)[0].Trim();
        return Uri.TryCreate(line, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" ? line : null;
    }

    private async Task<(string Address, GrpcChannel Channel, ControllerClient Client)?> LeaderAsync(CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            if (_leader is { } known)
            {
                return known;
            }
        }

        await _gate.WaitAsync(cancellationToken);
        try
        {
            lock (_sync)
            {
                if (_leader is { } known)
                {
                    return known;
                }
            }

            // Bounded like the report itself: a store cut off from the metadata store drops this report, not its threads.
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(CallTimeout);
            var node = await store.GetAsync(ClusterPaths.ControllerLeader, deadline.Token);
            if (node is not { } value || AddressOf(value.Data) is not { } address)
            {
                return null;
            }

            var channel = GrpcChannels.Create(address);
            lock (_sync)
            {
                _leader = (address, channel, new ControllerClient(channel));
                return _leader;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Drops the known leader if it is still <paramref name="address"/>. Never waits for a lookup in flight: it runs
    /// on the thread that saw a report fail, and blocking it while a lookup waits for an unreachable metadata store
    /// took a thread-pool thread per container (a woken store stopped answering even its health checks).
    /// </summary>
    private void Forget(string address)
    {
        GrpcChannel? dropped = null;
        lock (_sync)
        {
            if (_leader is { } known && known.Address == address)
            {
                dropped = known.Channel;
                _leader = null;
            }
        }

        dropped?.Dispose();
    }
}
