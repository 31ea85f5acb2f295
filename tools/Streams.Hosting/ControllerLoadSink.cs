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

    private readonly SemaphoreSlim _gate = new(1, 1);
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
        _leader?.Channel.Dispose();
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
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_leader is { } known)
            {
                return known;
            }

            var node = await store.GetAsync(ClusterPaths.ControllerLeader, cancellationToken);
            if (node is not { } value || AddressOf(value.Data) is not { } address)
            {
                return null;
            }

            var channel = GrpcChannels.Create(address);
            _leader = (address, channel, new ControllerClient(channel));
            return _leader;
        }
        finally
        {
            _gate.Release();
        }
    }

    private void Forget(string address)
    {
        _gate.Wait();
        try
        {
            if (_leader is { } known && known.Address == address)
            {
                known.Channel.Dispose();
                _leader = null;
            }
        }
        finally
        {
            _gate.Release();
        }
    }
}
