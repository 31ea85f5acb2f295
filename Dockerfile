# The server image: the `streams` CLI with every server role (standalone, bookie, segmentstore, controller, as the
# Helm chart in charts/streams runs them) and its client commands.
#
#   docker build -t streams:0.1.0 .
#   docker run --rm -p 9090:9090 -p 9091:9091 -p 9092:9092 -v streams-data:/var/lib/streams streams:0.1.0 standalone
#
# Build stage: the SDK restores and publishes tools/Streams.Cli (framework-dependent; the runtime stage has the
# ASP.NET Core runtime the roles need). The whole source tree is copied, less what .dockerignore leaves out: the CLI
# references most projects, and listing their project files one by one for a restore layer would go stale.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish tools/Streams.Cli/Streams.Cli.csproj --configuration Release --output /app --nologo

FROM mcr.microsoft.com/dotnet/aspnet:10.0
COPY --from=build /app /app
# Data lives under /var/lib/streams (standalone's default data directory here; the chart mounts its volumes below it),
# owned by the images' non-root user "app" (APP_UID, 1654).
RUN ln -s /app/streams /usr/local/bin/streams \
    && mkdir -p /var/lib/streams \
    && chown "$APP_UID:$APP_UID" /var/lib/streams
# In a container the server listens on every interface (the binary's own default is 127.0.0.1).
ENV STREAMS__SERVER__HOST=0.0.0.0 \
    STREAMS__DATADIRECTORY=/var/lib/streams
WORKDIR /var/lib/streams
USER $APP_UID
# gRPC, the raw data carrier and /metrics, /healthz, /readyz of standalone and the controller; the chart sets each
# role's ports (bookies 3181-3183, segment stores 9100-9102).
EXPOSE 9090 9091 9092
ENTRYPOINT ["streams"]
CMD ["--help"]
