# The agent-creation task Lambda: the Rust handler plus the Python the code review runs.
# Built by `sam build` (it needs Docker, which the development machine lacks).
FROM public.ecr.aws/docker/library/rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p oratio-functions --bin creation_tasks

FROM public.ecr.aws/lambda/provided:al2023
RUN dnf install -y python3.11 && dnf clean all
COPY --from=build /src/target/release/creation_tasks ${LAMBDA_RUNTIME_DIR}/bootstrap
CMD ["creation_tasks"]
