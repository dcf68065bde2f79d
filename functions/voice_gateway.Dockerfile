# The voice gateway (functions/src/bin/voice_gateway.rs) as the container the ECS service
# in template.yaml runs (parameter VoiceGatewayImage). arm64, like the Lambdas:
#   docker buildx build --platform linux/arm64 -f functions/voice_gateway.Dockerfile -t <ecr repo>:<tag> --push .
# (Docker is not on the development machine; this file is not built in CI.)
FROM public.ecr.aws/docker/library/rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p oratio-functions --bin voice_gateway

FROM public.ecr.aws/docker/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/voice_gateway /usr/local/bin/voice_gateway
USER 10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/voice_gateway"]
