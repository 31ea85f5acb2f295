using System.Diagnostics;
using System.Runtime.CompilerServices;
using Grpc.Core;
using Grpc.Net.Client;
using Streams.Common.Grpc;
using Streams.Contracts.Controller;
using GeneratedClient = Streams.Contracts.Controller.Controller.ControllerClient;
using GroupsClient = Streams.Contracts.Controller.ReaderGroups.ReaderGroupsClient;
using TransactionsClient = Streams.Contracts.Controller.Transactions.TransactionsClient;

namespace Streams.Client.Internal;

/// <summary>
/// Calls the controller; retries idempotent calls that failed because it was unreachable. A cluster may run several
/// controllers, each of which serves every call (one of them also leads, but clients never need to know which): the
/// client knows them all, sticks to the one that answered last, and moves to the next as soon as a call finds it
/// UNAVAILABLE (killed, restarting, cut off), so a dead controller costs one failed attempt, not a back-off. A frozen
/// controller (its kernel still accepts connections, but nothing answers) is noticed by HTTP/2 keep-alive pings within
/// the client's keep-alive timeout, and counts as unavailable.
/// </summary>
internal sealed class ControllerClient : IDisposable
{
    /// <summary>Rounds over every controller before a call fails; the client backs off between rounds.</summary>
    private const int Attempts = 5;

    private readonly (GrpcChannel Channel, GeneratedClient Client, GroupsClient Groups, TransactionsClient Transactions)[] _controllers;
    private readonly TimeSpan _timeout;
    private int _current;

    /// <param name="uris">The controllers' addresses (see <see cref="ParseUris"/>).</param>
    /// <param name="timeout">The deadline of each call, its retries on other controllers included.</param>
    /// <param name="keepAlive">
    /// How a connection to a controller that went silent (frozen, cut off) is noticed: HTTP/2 pings while a call waits,
    /// and the same timeout to connect. The call then fails UNAVAILABLE and moves to the next controller, instead of
    /// waiting out its deadline on the frozen one.
    /// </param>
    public ControllerClient(string uris, TimeSpan timeout, KeepAliveSettings? keepAlive = null)
    {
        var settings = keepAlive is { } k
            ? new GrpcChannelSettings { ConnectTimeout = k.Timeout, KeepAlivePingDelay = k.Interval, KeepAlivePingTimeout = k.Timeout }
            : null;
        _controllers = [.. ParseUris(uris).Select(uri =>
        {
            var channel = GrpcChannels.Create(uri, settings);
            return (channel, new GeneratedClient(channel), new GroupsClient(channel), new TransactionsClient(channel));
        })];
        _timeout = timeout;
    }

    /// <summary>
    /// The controller addresses in <paramref name="uris"/>: one, or several separated by commas
    /// ("http://c1:9090,http://c2:9090"). Throws <see cref="ArgumentException"/> naming an address that is not
    /// http:// or https://.
    /// </summary>
    public static IReadOnlyList<string> ParseUris(string? uris, string? paramName = null)
    {
        var list = (uris ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (list.Length == 0)
        {
            throw new ArgumentException("ControllerUri names no controller; give an address such as http://127.0.0.1:9090.", paramName);
        }

        foreach (var uri in list)
        {
            if (!Uri.TryCreate(uri, UriKind.Absolute, out var parsed) || (parsed.Scheme != Uri.UriSchemeHttp && parsed.Scheme != Uri.UriSchemeHttps))
            {
                throw new ArgumentException($"ControllerUri '{uri}' must be an http:// or https:// address (several are separated by commas).", paramName);
            }
        }

        return list;
    }

    /// <summary>
    /// Makes a call with the client's timeout; retries it while the controllers are UNAVAILABLE if <paramref name="idempotent"/>,
    /// on the next controller at once and, after a round over all of them, after a back-off.
    /// The call, retries included, is one span named after <paramref name="method"/>, the SDK method that makes it.
    /// </summary>
    public Task<TResponse> CallAsync<TResponse>(
        Func<GeneratedClient, CallOptions, AsyncUnaryCall<TResponse>> call, CancellationToken cancellationToken, bool idempotent = true, [CallerMemberName] string method = "") =>
        CallWithFailoverAsync(static c => c.Client, call, cancellationToken, idempotent, method);

    /// <summary>
    /// A call of the ReaderGroups service, which every controller serves on the same endpoint, with the same failover
    /// as <see cref="CallAsync"/>.
    /// A controller that does not lead answers it UNAVAILABLE, so the call moves on until it finds the leader.
    /// <paramref name="serverWait"/> is how long the controller may hold the call on purpose (a checkpoint waiting for
    /// its readers): it is added to the client's timeout, so the controller's own answer arrives before the deadline.
    /// </summary>
    public Task<TResponse> CallGroupsAsync<TResponse>(
        Func<GroupsClient, CallOptions, AsyncUnaryCall<TResponse>> call, CancellationToken cancellationToken, bool idempotent = true, TimeSpan serverWait = default, [CallerMemberName] string method = "") =>
        CallWithFailoverAsync(static c => c.Groups, call, cancellationToken, idempotent, method, serverWait);

    /// <summary>A call of the Transactions service (every controller serves it), with the same failover as <see cref="CallAsync"/>.</summary>
    public Task<TResponse> CallTransactionsAsync<TResponse>(
        Func<TransactionsClient, CallOptions, AsyncUnaryCall<TResponse>> call, CancellationToken cancellationToken, bool idempotent = true, TimeSpan serverWait = default, [CallerMemberName] string method = "") =>
        CallWithFailoverAsync(static c => c.Transactions, call, cancellationToken, idempotent, method, serverWait);

    /// <summary>The one retry loop behind the services: <paramref name="pick"/> chooses the service's client of a controller.</summary>
    private async Task<TResponse> CallWithFailoverAsync<TClient, TResponse>(
        Func<(GrpcChannel Channel, GeneratedClient Client, GroupsClient Groups, TransactionsClient Transactions), TClient> pick, Func<TClient, CallOptions, AsyncUnaryCall<TResponse>> call, CancellationToken cancellationToken, bool idempotent, string method, TimeSpan serverWait = default)
    {
        using var activity = ClientTracing.StartCall(method);
        var delay = TimeSpan.FromMilliseconds(100);
        var failures = 0;
        while (true)
        {
            var index = Volatile.Read(ref _current);
            try
            {
                return await call(pick(_controllers[index]), GrpcChannels.Deadline(_timeout + serverWait, cancellationToken));
            }
            catch (RpcException e) when (idempotent && Unreachable(e) && ++failures < Attempts * _controllers.Length && !cancellationToken.IsCancellationRequested)
            {
                // Other calls may have moved on already; only the first to see this controller fail moves the client.
                Interlocked.CompareExchange(ref _current, (index + 1) % _controllers.Length, index);
                if (failures % _controllers.Length == 0)
                {
                    await Task.Delay(delay, cancellationToken);
                    delay *= 2;
                }
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested)
            {
                // The caller cancelled: say so as .NET does, not as a failure of the controller.
                throw new OperationCanceledException("The call was cancelled.", e, cancellationToken);
            }
            catch (RpcException e)
            {
                activity?.SetStatus(ActivityStatusCode.Error, e.Status.Detail);
                throw StreamsException.From(e);
            }
        }
    }

    /// <summary>
    /// Whether a call failed because its controller could not be reached: UNAVAILABLE, or a connection that broke under
    /// the call (a keep-alive ping not answered by a frozen controller surfaces as INTERNAL from the HTTP/2 stack).
    /// </summary>
    private static bool Unreachable(RpcException e) =>
        e.StatusCode == StatusCode.Unavailable
        || (e.StatusCode == StatusCode.Internal && e.Status.DebugException is HttpRequestException or HttpProtocolException or IOException);

    public Task<SegmentEndpoint> GetEndpointAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync((c, o) => c.GetSegmentEndpointAsync(new SegmentRef { Segment = segment }, o), cancellationToken);

    public Task<ActiveSegments> GetActiveSegmentsAsync(string scope, string stream, CancellationToken cancellationToken) =>
        CallAsync((c, o) => c.GetActiveSegmentsAsync(new StreamRef { Scope = scope, Stream = stream }, o), cancellationToken);

    public Task<StreamInfo> DescribeStreamAsync(string scope, string stream, CancellationToken cancellationToken) =>
        CallAsync((c, o) => c.DescribeStreamAsync(new StreamRef { Scope = scope, Stream = stream }, o), cancellationToken);

    // ---- Scaling ----

    /// <summary>Scales and answers once the new epoch is active. Retried while unavailable: the same request joins the scale it started.</summary>
    public Task<StreamInfo> ScaleStreamAsync(ScaleStreamRequest request, CancellationToken cancellationToken) =>
        CallAsync((c, o) => c.ScaleStreamAsync(request, o), cancellationToken);

    public Task<StreamInfo> UpdateStreamAsync(UpdateStreamRequest request, CancellationToken cancellationToken) =>
        CallAsync((c, o) => c.UpdateStreamAsync(request, o), cancellationToken);

    // ---- end of scaling ----

    // ---- Following scales (docs/scaling.md) ----

    /// <summary>The successors of a sealed segment, each with all its predecessors; empty while the segment is active, and with state SEALED once the stream is.</summary>
    public Task<SuccessorsReply> GetSuccessorsAsync(string segment, CancellationToken cancellationToken) =>
        CallAsync((c, o) => c.GetSuccessorsAsync(new SegmentRef { Segment = segment }, o), cancellationToken);

    /// <summary>Every segment the stream has had, in every epoch, with its predecessors.</summary>
    public Task<SegmentList> ListSegmentsAsync(string scope, string stream, CancellationToken cancellationToken) =>
        CallAsync((c, o) => c.ListSegmentsAsync(new StreamRef { Scope = scope, Stream = stream }, o), cancellationToken);

    // ----

    public void Dispose()
    {
        foreach (var (channel, _, _, _) in _controllers)
        {
            channel.Dispose();
        }
    }
}
