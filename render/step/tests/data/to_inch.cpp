// One-off: re-export a STEP file with OpenCascade's own writer in inches (write.step.unit),
// keeping its assembly, names and colours. Made step/tests/data/*-inch.stp.
#include <STEPCAFControl_Reader.hxx>
#include <STEPCAFControl_Writer.hxx>
#include <XCAFApp_Application.hxx>
#include <TDocStd_Document.hxx>
#include <Interface_Static.hxx>
#include <cstdio>
int main(int argc, char** argv) {
  Handle(XCAFApp_Application) app = XCAFApp_Application::GetApplication();
  Handle(TDocStd_Document) doc;
  app->NewDocument("MDTV-XCAF", doc);
  STEPCAFControl_Reader reader;
  reader.SetNameMode(true); reader.SetColorMode(true);
  if (reader.ReadFile(argv[1]) != IFSelect_RetDone || !reader.Transfer(doc)) return 1;
  Interface_Static::SetCVal("xstep.cascade.unit", "MM");
  printf("cascade %s\n", Interface_Static::CVal("xstep.cascade.unit"));
  Interface_Static::SetCVal("write.step.unit", "INCH");
  Interface_Static::SetCVal("write.step.schema", "AP214IS");
  STEPCAFControl_Writer writer;
  if (!writer.Transfer(doc, STEPControl_AsIs)) return 2;
  return writer.Write(argv[2]) == IFSelect_RetDone ? 0 : 3;
}
